"""A replay buffer whose rewards are the CURRENT reward network's, recomputed every time a batch is sampled.

The follower (SAC) learns from ``r_x(s, a)``, and ``x`` changes between its updates: a reward stored at collection
time would be stale after the next reward-net update. :class:`RelabelingReplayBuffer` stores transitions as SB3's
``ReplayBuffer`` does (the environment's reward included, unused) and, when a batch is sampled, replaces its rewards by

    r = reward_fn(s, a)                       (under torch.no_grad(); an nn.Module in eval mode for the call)
    r = clamp(r, -clip, clip)                 (when ``clip`` is set; the seed authors clamp to [-1, 1])

on the stored, un-normalised observation ``s`` and the stored action ``a`` (SAC's scaled action in ``[-1, 1]``, the
form the episode recorder keeps too, :mod:`sobirl.rlhf.recording`). So old transitions never carry stale rewards,
and the environment's reward never reaches the follower. Under ``VecNormalize`` the observations of the batch are
normalised as usual, but the reward net sees the raw ones (as in the fragments it learns from) and its reward is NOT
passed through ``VecNormalize``'s reward scaling.

The relabelling itself is the mixin :class:`RewardRelabeling`, which the frame-stack buffer
:class:`~sobirl.agents.RelabelingFrameStackReplayBuffer` shares.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sobirl.agents.types import StepRewardFn
from sobirl.validation import check_range


class RewardRelabeling:
    """Mixin for a replay buffer whose sampled rewards are ``reward_fn``'s (module docstring).

    The buffer's ``__init__`` calls :meth:`_init_relabeling` and its ``_get_samples`` returns
    :meth:`relabel` of the raw sampled observations and actions as the rewards; ``self.device`` is the buffer's.
    Used by :class:`RelabelingReplayBuffer` and :class:`~sobirl.agents.RelabelingFrameStackReplayBuffer`.
    """

    reward_fn: StepRewardFn
    clip: float | None
    device: torch.device

    def _init_relabeling(self, reward_fn: StepRewardFn, clip: float | None) -> None:
        """Check and keep ``reward_fn`` and ``clip`` (see :class:`RelabelingReplayBuffer`)."""
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable (observations, actions) -> rewards, got {type(reward_fn)}")
        self.reward_fn = reward_fn
        self.clip = None if clip is None else check_range("clip", clip, low=0.0, low_open=True)

    def relabel(self, observations: np.ndarray, actions: np.ndarray) -> torch.Tensor:
        """float32 ``(M, 1)`` rewards on the buffer's device for raw ``observations (M, *obs_shape)`` and stored
        ``actions (M, action_dim)``: ``reward_fn``, then the optional clamp."""
        fn = self.reward_fn
        if isinstance(fn, torch.nn.Module):
            param = next(fn.parameters(), None)
            device = self.device if param is None else param.device
            dtype = torch.float32 if param is None or not param.dtype.is_floating_point else param.dtype
            was_training = fn.training
            fn.eval()
            try:
                rewards = self._call(fn, observations, actions, device, dtype)
            finally:
                fn.train(was_training)
        else:
            rewards = self._call(fn, observations, actions, self.device, torch.float32)
        if rewards.shape != (len(observations),):
            raise ValueError(
                f"reward_fn must return one reward per row, shape ({len(observations)},), got {tuple(rewards.shape)}"
            )
        if self.clip is not None:
            rewards = rewards.clamp(-self.clip, self.clip)
        return rewards.to(device=self.device, dtype=torch.float32).reshape(-1, 1)

    @staticmethod
    def _call(
        fn: StepRewardFn, observations: np.ndarray, actions: np.ndarray, device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor:
        """``fn`` on the arrays as ``dtype`` tensors on ``device``, without building a graph."""
        with torch.no_grad():
            return fn(
                torch.as_tensor(observations, device=device, dtype=dtype),
                torch.as_tensor(actions, device=device, dtype=dtype),
            )


class RelabelingReplayBuffer(RewardRelabeling, ReplayBuffer):
    """SB3's ``ReplayBuffer`` with rewards recomputed by ``reward_fn`` at sampling time (module docstring).

    Pass it to an off-policy algorithm as ``replay_buffer_class`` with ``replay_buffer_kwargs={"reward_fn": ...}``
    (:func:`sobirl.agents.make_sac` does). The positional arguments are SB3's; ``optimize_memory_usage`` and
    ``n_envs >= 1`` work as in SB3.

    Args:
        reward_fn: ``(M, *obs_shape)`` observations and ``(M, action_dim)`` actions (torch) to ``(M,)`` rewards,
            e.g. a :class:`~sobirl.rlhf.RewardNet`. An ``nn.Module`` receives its inputs on the device and in the
            floating dtype of its first parameter and is switched to eval mode for the call (its previous mode is
            restored); any other callable receives float32 tensors on the buffer's device.
        clip: when set (``> 0``), rewards are clamped to ``[-clip, clip]``; ``1.0`` reproduces the seed authors.

    A pickled buffer (SB3's ``save_replay_buffer``) carries a COPY of ``reward_fn``: after ``load_replay_buffer``, set
    ``model.replay_buffer.reward_fn`` back to the live reward net.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        *,
        reward_fn: StepRewardFn,
        clip: float | None = None,
    ) -> None:
        self._init_relabeling(reward_fn, clip)
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
        )

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """SB3's ``ReplayBuffer._get_samples`` (same draws from numpy's global RNG, same fields) with the rewards
        replaced by :meth:`relabel` of the raw sampled observations and actions."""
        # numpy's global generator, as SB3 (which seeds it): same seed, same batches as SB3's own buffer
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))  # noqa: NPY002
        observations = self.observations[batch_inds, env_indices, :]
        actions = self.actions[batch_inds, env_indices, :]
        if self.optimize_memory_usage:
            next_observations = self.observations[(batch_inds + 1) % self.buffer_size, env_indices, :]
        else:
            next_observations = self.next_observations[batch_inds, env_indices, :]
        # time-limit truncations are not terminations (SB3's handle_timeout_termination)
        dones = self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
        return ReplayBufferSamples(
            self.to_torch(self._normalize_obs(observations, env)),
            self.to_torch(actions),
            self.to_torch(self._normalize_obs(next_observations, env)),
            self.to_torch(dones.reshape(-1, 1)),
            self.relabel(observations, actions),
        )
