"""Learned rewards for Discrete actions: one output per action, ``r_x(s, .) in R^|A|``.

With every action's reward in one forward, the exploration term's baseline ``b_x(s) = E_{a ~ pi(.|s)} r_x(s, a)``
(design math, section 5, ``one-step``) is exact: the dot product of the actor's probabilities with
:meth:`ActionRewardNet.action_rewards`, with no actions to sample. ``forward(observations, actions)`` picks the taken
action's reward, so the preference model (:mod:`sobirl.rlhf.preference_model`) and the relabelling replay buffer use
these nets as they use :class:`~sobirl.rlhf.reward_net.RewardNet`.

- :class:`MlpActionRewardNet`: an MLP on a 1-D observation.
- :class:`CnnActionRewardNet`: the Nature CNN (Mnih et al. 2015: 32 8x8 stride 4, 64 4x4 stride 2, 64 3x3 stride 1,
  a 512-unit layer, ReLU), the network of the seed authors' discrete SAC, on channels-first image observations in
  ``[0, 255]`` (divided by 255 inside, as Stable-Baselines3 preprocesses images).

``state_only=True`` gives either one output, shared by every action: ``r_x(s, a) = r_x(s)``. Preferences then
cannot charge a reward to an action that merely co-occurs with failure (on CartPole-v1, pushing towards an edge), and
the one-step exploration term ``J(s, a) - sum_a pi(a|s) J(s, a)`` is zero.

Both are initialised as :class:`~sobirl.rlhf.reward_net.RewardNet` (PyTorch's default rule from a private generator
seeded with ``seed``) and normalise their outputs the same way; the running statistics are those of the TAKEN actions'
rewards (``forward`` in training mode), the rewards the follower is relabelled with, and
:meth:`ActionRewardNet.action_rewards` applies them to every action without updating them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from torch import nn

from sobirl.rlhf.reward_net import ACTIVATIONS, OutputNormalization, seeded_init, seeded_mlp
from sobirl.validation import check_choice, check_int

NATURE_CNN = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
"""The Nature CNN's convolutions as ``(out_channels, kernel, stride)``."""


class ActionRewardNet(OutputNormalization):
    """``r(s, .)``: observations ``(..., *obs_shape)`` to ``(..., n_actions)`` rewards (module docstring).

    Subclasses build ``self.body`` mapping ``(N, *obs_shape)`` to ``(N, self.outputs)`` raw outputs: ``n_actions``, or
    1 with ``state_only`` (that one output is every action's).
    """

    body: nn.Module

    def __init__(self, obs_shape: Sequence[int], n_actions: int, *, normalize_output: bool, state_only: bool) -> None:
        super().__init__()
        self.obs_shape = tuple(check_int(f"obs_shape[{i}]", d, low=1) for i, d in enumerate(obs_shape))
        self.n_actions = check_int("n_actions", n_actions, low=2)
        if not isinstance(state_only, bool):
            raise TypeError(f"state_only must be true or false, got {state_only!r}")
        self.state_only = state_only
        self.outputs = 1 if state_only else self.n_actions
        self._init_normalization(normalize_output)

    def _raw(self, observations: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``(..., n_actions)``: ``body`` on the observations with their leading dimensions flattened."""
        k = len(self.obs_shape)
        if tuple(observations.shape[observations.dim() - k :]) != self.obs_shape:
            raise ValueError(f"observations must end in {self.obs_shape}, got {tuple(observations.shape)}")
        lead = observations.shape[: observations.dim() - k]
        param = next(self.parameters())
        rows = observations.reshape(-1, *self.obs_shape).to(param.dtype)
        return self.body(rows).expand(-1, self.n_actions).reshape(*lead, self.n_actions)

    def action_rewards(self, observations: torch.Tensor) -> torch.Tensor:
        """Every action's reward ``(..., n_actions)``, normalised with the current statistics (never updated)."""
        return self._normalize(self._raw(observations), update=False)

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The taken actions' rewards ``(...)``; ``actions`` are indices ``(...)`` or ``(..., 1)`` (SB3 stores
        Discrete actions with a trailing 1), integer or integral floats in ``[0, n_actions)``."""
        return self.taken_and_all(observations, actions)[0]

    def taken_and_all(self, observations: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The taken actions' rewards ``(...)`` (as :meth:`forward`) and every action's ``(..., n_actions)``, from ONE
        pass of the network, both normalised with the statistics after merging the taken ones (training mode)."""
        lead = observations.shape[: observations.dim() - len(self.obs_shape)]
        if actions.shape == (*lead, 1):
            actions = actions.squeeze(-1)
        if actions.shape != lead:
            raise ValueError(
                f"actions must have shape {tuple(lead)} or {(*lead, 1)} for observations {tuple(observations.shape)}, "
                f"got {tuple(actions.shape)}"
            )
        index = actions.long()
        if actions.numel() and (
            (index != actions).any() or index.min().item() < 0 or index.max().item() >= self.n_actions
        ):
            raise ValueError(f"actions must be integers in [0, {self.n_actions}), got {actions.unique().tolist()}")
        raw = self._raw(observations)
        taken = self._normalize(raw.gather(-1, index.unsqueeze(-1)).squeeze(-1), update=True)
        return taken, self._normalize(raw, update=False)

    @property
    def head(self) -> nn.Linear:
        """The last linear layer (``outputs`` units), whose parameters the successor features differentiate."""
        return self.body[-1]

    def all_head_features(self, observations: torch.Tensor) -> torch.Tensor:
        """``F(s, a) = d r(s, a) / d theta_head`` of every action, ``(..., n_actions, outputs (d + 1))`` in the layout
        of :func:`~sobirl.rlhf.reward_net.head_parameters`: the last hidden layer's output and a 1, divided by
        :meth:`output_scale`, in the block of the output that is action ``a``'s (the only one with ``state_only``)
        and zero elsewhere (no graph)."""
        k = len(self.obs_shape)
        lead = observations.shape[: observations.dim() - k]
        param = next(self.parameters())
        with torch.no_grad():
            phi = self.body[:-1](observations.reshape(-1, *self.obs_shape).to(param.dtype))
            block = torch.cat([phi, torch.ones_like(phi[:, :1])], dim=1) / self.output_scale()  # (N, d + 1)
            eye = torch.eye(self.outputs, dtype=block.dtype, device=block.device)
            if self.state_only:
                eye = eye.expand(self.n_actions, 1)
            features = eye.unsqueeze(-1) * block[:, None, None, :]  # (N, n_actions, outputs, d + 1)
        return features.reshape(*lead, self.n_actions, -1)

    def head_features(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``F(s, a)`` of the taken actions (indices as :meth:`forward`), ``(..., outputs (d + 1))``."""
        every = self.all_head_features(observations)
        index = actions.reshape(every.shape[:-2]).long()
        return every.gather(-2, index[..., None, None].expand(*index.shape, 1, every.shape[-1])).squeeze(-2)


class MlpActionRewardNet(ActionRewardNet):
    """``r(s, .) = MLP(s)`` with ``n_actions`` outputs, for 1-D observations of size ``obs_dim``.

    Args:
        obs_dim: observation size (``>= 1``).
        n_actions: number of actions (``>= 2``).
        hidden: widths of the hidden layers (each ``>= 1``; empty: linear).
        activation: one of :data:`sobirl.rlhf.reward_net.ACTIVATIONS`, after every hidden layer.
        normalize_output: keep running output statistics and return normalised rewards.
        state_only: one output shared by every action, ``r(s, a) = r(s)`` (module docstring).
        seed: the seed of the initialisation.
        dtype: parameter dtype (float32 by default).
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        *,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        normalize_output: bool = False,
        state_only: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__((obs_dim,), n_actions, normalize_output=normalize_output, state_only=state_only)
        hidden = tuple(check_int(f"hidden[{i}]", h, low=1) for i, h in enumerate(hidden))
        check_choice("activation", activation, ACTIVATIONS)
        self.init_kwargs = {
            "obs_dim": obs_dim,
            "n_actions": n_actions,
            "hidden": hidden,
            "activation": activation,
            "normalize_output": normalize_output,
            "state_only": state_only,
            "seed": seed,
            "dtype": dtype,
        }
        gen = torch.Generator().manual_seed(check_int("seed", seed))
        self.body = seeded_mlp((obs_dim, *hidden, self.outputs), activation, gen, dtype)


class CnnActionRewardNet(ActionRewardNet):
    """The Nature CNN with ``n_actions`` outputs on channels-first images ``(C, H, W)`` with values in ``[0, 255]``.

    Args:
        obs_shape: ``(C, H, W)``, e.g. ``(4, 84, 84)`` for 4 stacked 84x84 grayscale frames; ``H, W >= 36`` (the
            smallest input the three convolutions accept).
        n_actions: number of actions (``>= 2``).
        features_dim: width of the fully connected layer after the convolutions (512 in the Nature CNN).
        normalize_output: keep running output statistics and return normalised rewards.
        state_only: one output shared by every action, ``r(s, a) = r(s)`` (module docstring).
        seed: the seed of the initialisation.
        dtype: parameter dtype (float32 by default).
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        n_actions: int,
        *,
        features_dim: int = 512,
        normalize_output: bool = False,
        state_only: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if len(obs_shape) != 3 or min(obs_shape[1:]) < 36:
            raise ValueError(f"obs_shape must be (C, H, W) with H, W >= 36, got {tuple(obs_shape)}")
        super().__init__(obs_shape, n_actions, normalize_output=normalize_output, state_only=state_only)
        check_int("features_dim", features_dim, low=1)
        self.init_kwargs = {
            "obs_shape": self.obs_shape,
            "n_actions": n_actions,
            "features_dim": features_dim,
            "normalize_output": normalize_output,
            "state_only": state_only,
            "seed": seed,
            "dtype": dtype,
        }
        gen = torch.Generator().manual_seed(check_int("seed", seed))
        layers: list[nn.Module] = []
        channels, height, width = self.obs_shape
        for out_channels, kernel, stride in NATURE_CNN:
            conv = torch.nn.utils.skip_init(nn.Conv2d, channels, out_channels, kernel, stride=stride, dtype=dtype)
            seeded_init(conv, gen)
            layers += [conv, nn.ReLU()]
            channels, height, width = out_channels, (height - kernel) // stride + 1, (width - kernel) // stride + 1
        hidden = torch.nn.utils.skip_init(nn.Linear, channels * height * width, features_dim, dtype=dtype)
        head = torch.nn.utils.skip_init(nn.Linear, features_dim, self.outputs, dtype=dtype)
        seeded_init(hidden, gen)
        seeded_init(head, gen)
        self.body = nn.Sequential(_Scale(1.0 / 255.0), *layers, nn.Flatten(), hidden, nn.ReLU(), head)


class _Scale(nn.Module):
    """Multiplies its input by a constant (pixels in [0, 255] to [0, 1])."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def action_reward_net(observation_space: spaces.Space, action_space: spaces.Space, **kwargs: Any) -> ActionRewardNet:
    """The reward net for an environment with Discrete actions: :class:`CnnActionRewardNet` for channels-first image
    observations (``uint8`` Box ``(C, H, W)``, as Stable-Baselines3's ``VecTransposeImage`` gives),
    :class:`MlpActionRewardNet` for 1-D Box observations; ``kwargs`` go to its constructor.

    Raises:
        TypeError: the action space is not Discrete, or the observation space not a Box, naming the fix.
        ValueError: an image in channels-last layout, or an observation shape neither 1-D nor an image.
    """
    if not isinstance(action_space, spaces.Discrete):
        raise TypeError(
            f"action_space must be gymnasium.spaces.Discrete for a per-action reward net, got {action_space}; "
            "Box actions use sobirl.rlhf.RewardNet"
        )
    if not isinstance(observation_space, spaces.Box):
        raise TypeError(
            f"observation_space must be a gymnasium.spaces.Box (1-D or an image), got {observation_space}; wrap the "
            "environment in gymnasium.wrappers.FlattenObservation"
        )
    n_actions = int(action_space.n)
    if is_image_space(observation_space, check_channels=False):
        if not is_image_space_channels_first(observation_space):
            raise ValueError(
                f"observation_space must be a channels-first image (C, H, W), got shape {observation_space.shape}; "
                "wrap the VecEnv in stable_baselines3.common.vec_env.VecTransposeImage"
            )
        return CnnActionRewardNet(observation_space.shape, n_actions, **kwargs)
    if len(observation_space.shape) != 1:
        raise ValueError(
            f"observation_space must be 1-D or a uint8 image, got shape {observation_space.shape}; wrap the "
            "environment in gymnasium.wrappers.FlattenObservation"
        )
    return MlpActionRewardNet(observation_space.shape[0], n_actions, **kwargs)
