"""The learned reward ``r_x(s, a)``: an MLP on the concatenated observation and action, seeded, optionally normalised.

Initialisation reproduces PyTorch's default for ``nn.Linear`` (weights and biases ``U(-1/sqrt(fan_in),
1/sqrt(fan_in))``) but draws from a private ``torch.Generator`` seeded with ``seed``: the same seed gives the same
network, and torch's global RNG is never read or advanced.

Output normalisation (``normalize_output=True``) keeps a running mean ``mu`` and variance ``sigma^2`` of the raw
per-step outputs ``f(s, a)`` and returns ``(f(s, a) - mu) / sqrt(sigma^2 + eps)``:

- in training mode every forward first merges its batch into the statistics (exact pooled mean and variance over
  all raw outputs seen in training mode, Chan et al. 1979), then normalises with them; gradients flow through
  ``f`` only (the statistics are constants);
- in eval mode the statistics are frozen, so relabelling the follower's transitions (under ``torch.no_grad()``,
  ``net.eval()``) gives rewards of about unit scale, consistent across calls.

Before the first training-mode forward ``mu = 0``, ``sigma^2 = 1`` (the output is ``f / sqrt(1 + eps)``). The
mean cancels in a Bradley-Terry logit between fragments of equal length; the scale does not, so the preference
model learns the reward in units of its running standard deviation.

Parameters default to float32 (the follower's networks and SB3 are float32); tests use float64. Box observation and
action spaces; Discrete actions have their per-action nets in :mod:`sobirl.rlhf.action_reward_net`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from sobirl.validation import check_choice, check_int

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}
"""The hidden-layer activations by name."""

NORM_EPS = 1e-8
"""``eps`` in the normalised output ``(f - mu) / sqrt(sigma^2 + eps)``."""


class OutputNormalization(nn.Module):
    """The running output normalisation of the module docstring, shared by every reward net: subclasses call
    :meth:`_init_normalization` in their constructor and pass their raw per-step outputs through :meth:`_normalize`."""

    normalize_output: bool
    init_kwargs: dict[str, Any]
    """The constructor's arguments by name, set by each reward net's constructor: ``type(net)(**net.init_kwargs)``
    builds the same network before training (:func:`sobirl.rlhf.artifacts.save_reward_net` stores them)."""

    def _init_normalization(self, enabled: bool) -> None:
        self.normalize_output = enabled
        if enabled:
            self.register_buffer("reward_count", torch.zeros((), dtype=torch.int64))
            self.register_buffer("reward_mean", torch.zeros((), dtype=torch.float64))
            self.register_buffer("reward_var", torch.ones((), dtype=torch.float64))

    def _normalize(self, raw: torch.Tensor, *, update: bool) -> torch.Tensor:
        """``(raw - mu) / sqrt(sigma^2 + eps)``, first merging ``raw`` into the statistics when ``update`` and the
        module is in training mode; ``raw`` itself when normalisation is off."""
        if not self.normalize_output:
            return raw
        if update and self.training:
            self._update_statistics(raw.detach())
        mean, var = self.reward_mean.to(raw.dtype), self.reward_var.to(raw.dtype)
        return (raw - mean) / torch.sqrt(var + NORM_EPS)

    def output_scale(self) -> float:
        """``sqrt(sigma^2 + eps)``, what a raw output is divided by (1 without normalisation)."""
        return math.sqrt(self.reward_var.item() + NORM_EPS) if self.normalize_output else 1.0

    def output_offset(self) -> float:
        """``mu / sqrt(sigma^2 + eps)``: a normalised output is ``raw / output_scale() - output_offset()``."""
        return self.reward_mean.item() / self.output_scale() if self.normalize_output else 0.0

    def _update_statistics(self, batch: torch.Tensor) -> None:
        """Merge a batch of raw outputs into the running mean and (population) variance."""
        n_b = batch.numel()
        if n_b == 0:
            return
        batch = batch.to(torch.float64)
        mean_b, var_b = batch.mean(), batch.var(correction=0)
        n_a = self.reward_count.item()
        n = n_a + n_b
        delta = mean_b - self.reward_mean
        self.reward_var.copy_((self.reward_var * n_a + var_b * n_b + delta**2 * (n_a * n_b / n)) / n)
        self.reward_mean.add_(delta * (n_b / n))
        self.reward_count.fill_(n)


def seeded_init(layer: nn.Linear | nn.Conv2d, gen: torch.Generator) -> None:
    """PyTorch's default initialisation of a linear or convolutional layer (weights and biases
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), drawn from ``gen`` instead of the global RNG."""
    bound = 1.0 / math.sqrt(layer.weight[0].numel())  # fan_in: inputs (x kernel size) per output unit
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.uniform_(-bound, bound, generator=gen)


def seeded_mlp(widths: Sequence[int], activation: str, gen: torch.Generator, dtype: torch.dtype) -> nn.Sequential:
    """Linear layers ``widths[0] -> ... -> widths[-1]`` with ``activation`` between them, initialised by
    :func:`seeded_init` from ``gen``."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(pairwise(widths)):
        # skip_init builds the layer without its default initialisation, which would draw from the global RNG
        linear = torch.nn.utils.skip_init(nn.Linear, fan_in, fan_out, dtype=dtype)
        seeded_init(linear, gen)
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class RewardNet(OutputNormalization):
    """``r(s, a) = MLP([s, a])``: ``(..., obs_dim)`` and ``(..., act_dim)`` in, ``(...)`` out (module docstring).

    Args:
        obs_dim: observation size (an integer ``>= 1``).
        act_dim: action size (an integer ``>= 1``).
        hidden: widths of the hidden layers (each ``>= 1``; empty: a linear reward).
        activation: one of :data:`ACTIVATIONS`, after every hidden layer.
        normalize_output: keep running output statistics and return normalised rewards.
        seed: the seed of the initialisation.
        dtype: parameter dtype (float32 by default).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        normalize_output: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.obs_dim = check_int("obs_dim", obs_dim, low=1)
        self.act_dim = check_int("act_dim", act_dim, low=1)
        self.hidden = tuple(check_int(f"hidden[{i}]", h, low=1) for i, h in enumerate(hidden))
        check_choice("activation", activation, ACTIVATIONS)
        self._init_normalization(normalize_output)

        self.init_kwargs = {
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "hidden": self.hidden,
            "activation": activation,
            "normalize_output": normalize_output,
            "seed": seed,
            "dtype": dtype,
        }
        gen = torch.Generator().manual_seed(check_int("seed", seed))
        self.mlp = seeded_mlp((obs_dim + act_dim, *self.hidden, 1), activation, gen, dtype)

    @classmethod
    def from_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space, **kwargs: Any) -> RewardNet:
        """A reward net for an environment's spaces: both must be 1-D ``gymnasium.spaces.Box``.

        ``kwargs`` go to the constructor. Raises ``TypeError`` (not a Box) or ``ValueError`` (not 1-D) naming the
        space and the fix.
        """
        obs_dim = _box_dim(
            "observation_space",
            observation_space,
            not_box="wrap the environment in gymnasium.wrappers.FlattenObservation (a Discrete space becomes one-hot)",
            not_flat="wrap the environment in gymnasium.wrappers.FlattenObservation",
        )
        act_dim = _box_dim(
            "action_space",
            action_space,
            not_box="Discrete actions come with the discrete SAC follower; use an environment with Box actions",
            not_flat="reshape the actions to 1-D in a gymnasium.ActionWrapper",
        )
        return cls(obs_dim, act_dim, **kwargs)

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Rewards ``(...)`` of ``observations (..., obs_dim)`` and ``actions (..., act_dim)``."""
        if observations.shape[-1] != self.obs_dim or actions.shape[-1] != self.act_dim:
            raise ValueError(
                f"observations and actions must end in obs_dim = {self.obs_dim} and act_dim = {self.act_dim}, "
                f"got {tuple(observations.shape)} and {tuple(actions.shape)}"
            )
        raw = self.mlp(torch.cat([observations, actions], dim=-1)).squeeze(-1)
        return self._normalize(raw, update=True)

    @property
    def head(self) -> nn.Linear:
        """The last linear layer, whose parameters the successor features differentiate."""
        return self.mlp[-1]

    def head_features(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``F(s, a) = d r(s, a) / d theta_head``, ``(..., hidden[-1] + 1)``: the last hidden layer's output and a 1,
        divided by :meth:`output_scale`; ``r(s, a) = F(s, a) . head_parameters(self) + const`` (no graph)."""
        with torch.no_grad():
            phi = self.mlp[:-1](torch.cat([observations, actions], dim=-1))
            ones = torch.ones_like(phi[..., :1])
            return torch.cat([phi, ones], dim=-1) / self.output_scale()


def head_parameters(net: RewardNet | nn.Module) -> torch.Tensor:
    """The last linear layer's parameters as one flat vector, row by row ``[W_k, b_k]`` (``(outputs (d + 1),)``), the
    layout of :meth:`RewardNet.head_features`; differentiable in them."""
    head = net.head
    return torch.cat([head.weight, head.bias.unsqueeze(1)], dim=1).reshape(-1)


def _box_dim(name: str, space: spaces.Space, *, not_box: str, not_flat: str) -> int:
    """The size of a 1-D Box ``space``, else an error naming ``name``, what is allowed and the fix."""
    if not isinstance(space, spaces.Box):
        raise TypeError(f"{name} must be a gymnasium.spaces.Box with a 1-D shape, got {space}; {not_box}")
    if len(space.shape) != 1:
        raise ValueError(f"{name} must be a Box with a 1-D shape, got shape {space.shape}; {not_flat}")
    return int(space.shape[0])
