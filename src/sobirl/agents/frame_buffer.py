"""A replay buffer for ``VecFrameStack`` observations that stores every frame once, as uint8.

SB3's ``ReplayBuffer`` keeps two full stacks of ``k`` frames per transition (``observations`` and
``next_observations``): 56.4 GB for 1M Atari transitions of ``(4, 84, 84)``. The stacks of one episode share
``k - 1`` frames with their neighbours, so :class:`FrameStackReplayBuffer` stores, per environment, one ring
``frames[env] (F, H, W)`` of single uint8 frames and, per transition ``(row, env)``,

- ``obs_end``: the absolute index (taken modulo ``F`` in the ring) of the newest frame of ``obs``, so that
  ``obs = frames[obs_end - k + 1 .. obs_end]`` and ``next_obs = frames[obs_end - k + 2 .. obs_end + 1]``;
- ``obs_pad``: the number of leading frames of ``obs`` that are zeros and not stored (``next_obs`` then has
  ``max(obs_pad - 1, 0)``); VecFrameStack's reset stack ``[0, ..., 0, o_0]`` has ``k - 1``;
- ``actions``, ``rewards``, ``dones`` and ``timeouts`` as SB3's ``ReplayBuffer`` stores them; no ``next_obs``.

``add(obs, next_obs, ...)`` writes, per environment,

- the frames of ``obs`` after its leading all-zero ones, unless ``obs`` equals the previous ``next_obs`` of that
  environment (the episode goes on, its frames are the last ``k`` written): so one frame at an episode start, and
  also at the first call or after a ``learn`` that reset the environments mid-episode;
- the newest frame of ``next_obs``: the next observation, or the terminal one on a done step (SB3's off-policy
  algorithms pass ``infos[i]["terminal_observation"]`` there; VecFrameStack builds it from the episode's frames).

Why the rebuilt stacks equal a naive buffer's, bit for bit: a stack is reused only when it is EQUAL to the one
passed (``np.array_equal``), the zeros that are not stored are zeros, and ``next_obs`` must be ``obs`` shifted by one
frame (``ValueError`` otherwise), which VecFrameStack guarantees on every step, terminal observations included.
Sampling draws the same indices from numpy's global RNG as SB3, so a seeded batch is the one SB3's ``ReplayBuffer``
fed the same transitions would return; ``tests/test_frame_buffer.py`` checks it, with the ring wrapped around.

The ring holds one frame per transition, one per episode start and ``k`` more: by default ``F`` is
``rows + rows // 16 + k`` (an episode start per 16 transitions on average); a ring that would overwrite a frame
still in use grows by at least a quarter, with a warning naming the ``frame_capacity`` to pass instead. 1M
transitions of 84x84 frames with ``k = 4`` take 7.5 GB (:func:`frame_buffer_bytes`), against SB3's 56.5 GB.

- :class:`FrameStackReplayBuffer`: the buffer (``replay_buffer_class`` of DQN, :class:`~sobirl.agents.DiscreteSAC`);
- :class:`RelabelingFrameStackReplayBuffer`: the same with rewards from ``reward_fn`` (:mod:`sobirl.agents.relabel`);
- :func:`frame_buffer_bytes`: the bytes such a buffer allocates, computed without allocating it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from numpy.typing import DTypeLike
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sobirl.agents.relabel import RewardRelabeling
from sobirl.agents.types import StepRewardFn
from sobirl.validation import check_int

_TRANSITIONS_PER_EPISODE_START = 16
"""The default ring has room for one episode start per this many transitions (each start stores one more frame)."""


def _default_capacity(rows: int, n_stack: int) -> int:
    """Frames per environment ring: one per transition, the reserve for episode starts, and the oldest stack's."""
    return rows + rows // _TRANSITIONS_PER_EPISODE_START + n_stack


def _array_specs(
    rows: int,
    n_envs: int,
    frame_shape: tuple[int, int],
    n_stack: int,
    capacity: int,
    action_dim: int,
    action_dtype: DTypeLike,
) -> dict[str, tuple[tuple[int, ...], DTypeLike]]:
    """Name to ``(shape, dtype)`` of every array of a :class:`FrameStackReplayBuffer` (allocation and estimate)."""
    return {
        "frames": ((n_envs, capacity, *frame_shape), np.uint8),
        "obs_end": ((rows, n_envs), np.int64),
        "obs_pad": ((rows, n_envs), np.min_scalar_type(n_stack)),
        "actions": ((rows, n_envs, action_dim), action_dtype),
        "rewards": ((rows, n_envs), np.float32),
        "dones": ((rows, n_envs), np.float32),
        "timeouts": ((rows, n_envs), np.float32),
        # per environment: next write position, and the previous next_obs (to recognise a continuing episode)
        "_head": ((n_envs,), np.int64),
        "_last_next": ((n_envs, n_stack, *frame_shape), np.uint8),
        "_last_pad": ((n_envs,), np.int64),
    }


def frame_buffer_bytes(
    buffer_size: int,
    frame_shape: tuple[int, int],
    n_stack: int,
    n_envs: int = 1,
    *,
    action_dim: int = 1,
    action_dtype: DTypeLike = np.int64,
    frame_capacity: int | None = None,
) -> int:
    """Bytes a :class:`FrameStackReplayBuffer` allocates for ``buffer_size`` transitions of ``n_stack`` stacked
    ``frame_shape`` (H, W) frames from ``n_envs`` environments, before any growth of its rings; the default action
    is a ``Discrete`` one (one int64). Nothing is allocated."""
    rows = max(buffer_size // n_envs, 1)
    capacity = _default_capacity(rows, n_stack) if frame_capacity is None else frame_capacity
    specs = _array_specs(rows, n_envs, frame_shape, n_stack, capacity, action_dim, action_dtype)
    return sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in specs.values())


def _stack_layout(observation_space: spaces.Space, n_stack: int) -> tuple[bool, tuple[int, int]]:
    """``(channels_first, (H, W))`` of VecFrameStack's stack of ``n_stack`` grayscale frames, else ``ValueError``."""
    check_int("n_stack", n_stack, low=1)
    if not isinstance(observation_space, spaces.Box) or not is_image_space(observation_space):
        raise ValueError(
            "observation_space: FrameStackReplayBuffer needs VecFrameStack's image Box (3 dims, uint8 in [0, 255], "
            f"frames stacked on the first or last axis), got {observation_space}"
        )
    # the axis SB3 itself picks, for VecFrameStack's stacking and VecTransposeImage alike
    channels_first = is_image_space_channels_first(observation_space)
    shape = observation_space.shape
    channels, frame_shape = (shape[0], shape[1:]) if channels_first else (shape[2], shape[:2])
    if channels == 3 * n_stack:
        raise ValueError(
            f"observation_space: {shape} holds n_stack={n_stack} RGB frames; only grayscale frames (one channel each, "
            f"as SB3's AtariWrapper gives) are supported (n_stack={channels} if these are {channels} grayscale frames)"
        )
    if channels != n_stack:
        raise ValueError(
            f"n_stack: the observation space {shape} stacks {channels} one-channel frames on its "
            f"{'first' if channels_first else 'last'} axis, so n_stack must be {channels}, got {n_stack}"
        )
    return channels_first, (int(frame_shape[0]), int(frame_shape[1]))


class FrameStackReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` for ``VecFrameStack`` image observations, each frame stored once (module docstring).

    Pass it to an off-policy algorithm as ``replay_buffer_class`` with ``replay_buffer_kwargs={"n_stack": k}``,
    e.g. ``DQN("CnnPolicy", VecFrameStack(make_atari_env(...), 4), replay_buffer_class=FrameStackReplayBuffer,
    replay_buffer_kwargs={"n_stack": 4})``. Observations are channels-last ``(H, W, k)`` as VecFrameStack gives
    them, or channels-first ``(k, H, W)`` after the ``VecTransposeImage`` SB3 adds; each frame is one grayscale
    channel. The positional arguments are SB3's; ``optimize_memory_usage`` must stay False (nothing to optimise).

    Args:
        n_stack: ``k``, the number of stacked frames; it must be the stack axis' size.
        frame_capacity: frames per environment ring; None: ``rows + rows // 16 + k``. Too small a ring grows.

    Attributes ``frames``, ``obs_end`` and ``obs_pad`` are the storage the module docstring describes; ``actions``,
    ``rewards``, ``dones``, ``timeouts``, ``pos`` and ``full`` are SB3's; :attr:`nbytes` is the memory held.
    """

    frames: np.ndarray
    obs_end: np.ndarray
    obs_pad: np.ndarray
    _head: np.ndarray
    _last_next: np.ndarray
    _last_pad: np.ndarray

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
        n_stack: int,
        frame_capacity: int | None = None,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError("optimize_memory_usage: must be False, FrameStackReplayBuffer stores each frame once")
        self.channels_first, self.frame_shape = _stack_layout(observation_space, n_stack)
        self.n_stack = n_stack
        # BaseBuffer's __init__: ReplayBuffer's would allocate the two full stacks per transition this class avoids
        super(ReplayBuffer, self).__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)  # rows of n_envs transitions, as in SB3
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        capacity = (
            _default_capacity(self.buffer_size, n_stack)
            if frame_capacity is None
            else check_int("frame_capacity", frame_capacity, low=1)
        )
        action_dtype = self._maybe_cast_dtype(action_space.dtype)
        specs = _array_specs(
            self.buffer_size, n_envs, self.frame_shape, n_stack, capacity, self.action_dim, action_dtype
        )
        for name, (shape, dtype) in specs.items():
            setattr(self, name, np.zeros(shape, dtype=dtype))
        # before the first add, each env's "previous next_obs" is k padding zeros: an all-zero first obs continues it
        self._last_pad[:] = n_stack

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays, the frame rings as they are now."""
        return sum(value.nbytes for value in vars(self).values() if isinstance(value, np.ndarray))

    def _to_stacks(self, observations: np.ndarray) -> np.ndarray:
        """``(n_envs, k, H, W)`` view of one observation per environment in the observation space's layout."""
        stacks = np.asarray(observations).reshape((self.n_envs, *self.obs_shape))
        return stacks if self.channels_first else np.moveaxis(stacks, -1, 1)

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one transition per environment, as SB3's ``ReplayBuffer.add`` takes it: the frames of ``obs`` only
        where it does not continue the environment's previous ``next_obs``, and the newest frame of ``next_obs``."""
        k = self.n_stack
        obs_stacks, next_stacks = self._to_stacks(obs), self._to_stacks(next_obs)
        shifted = (next_stacks[:, :-1] == obs_stacks[:, 1:]).reshape(self.n_envs, -1).all(axis=1)
        if not shifted.all():
            raise ValueError(
                f"next_obs: must be obs shifted by one frame, as VecFrameStack gives it (terminal observations "
                f"included); not so in env(s) {np.flatnonzero(~shifted).tolist()}"
            )
        continues = (obs_stacks == self._last_next).reshape(self.n_envs, -1).all(axis=1)
        nonzero = obs_stacks.reshape(self.n_envs, k, -1).any(axis=2)
        leading_zeros = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), k)
        pad = np.where(continues, self._last_pad, leading_zeros)
        n_fresh = np.where(continues, 0, k - leading_zeros)  # frames of obs to write
        self.obs_end[self.pos] = self._head + n_fresh - 1
        self.obs_pad[self.pos] = pad
        self._reserve(n_fresh + 1)
        capacity = self.frames.shape[1]
        for env in range(self.n_envs):
            written = np.concatenate((obs_stacks[env, k - n_fresh[env] :], next_stacks[env, -1:]))
            self.frames[env, (self._head[env] + np.arange(len(written))) % capacity] = written
        self._head += n_fresh + 1
        self._last_next[:] = next_stacks
        self._last_pad[:] = np.maximum(pad - 1, 0)

        self.actions[self.pos] = np.asarray(action).reshape((self.n_envs, self.action_dim))
        self.rewards[self.pos] = np.asarray(reward)
        self.dones[self.pos] = np.asarray(done)
        if self.handle_timeout_termination:
            self.timeouts[self.pos] = [info.get("TimeLimit.truncated", False) for info in infos]
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def _reserve(self, n_write: np.ndarray) -> None:
        """Grow the rings (with a warning) if writing ``n_write`` more frames per environment would overwrite a
        frame of a transition still in the buffer; row ``pos`` already describes the transition being added."""
        oldest = (self.pos + 1) % self.buffer_size if self.full else 0
        # rows are written in order and their first frames never move back: the oldest row's is the first in use
        first = self.obs_end[oldest] - self.n_stack + 1 + self.obs_pad[oldest]
        need = int((self._head + n_write - first).max())
        capacity = self.frames.shape[1]
        if need <= capacity:
            return
        grown = max(need, capacity + capacity // 4)
        frames = np.zeros((self.n_envs, grown, *self.frame_shape), dtype=np.uint8)
        for env in range(self.n_envs):
            live = np.arange(first[env], self._head[env])
            frames[env, live % grown] = self.frames[env, live % capacity]
        self.frames = frames
        warnings.warn(
            f"FrameStackReplayBuffer frame ring grown from {capacity} to {grown} frames per env (the buffer's "
            "transitions need one frame each, one per episode start and n_stack more); pass a larger frame_capacity "
            "to allocate it at once",
            stacklevel=3,
        )

    def _stacks(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``obs`` and ``next_obs`` stacks of transitions ``(batch_inds, env_indices)``, in the space's layout."""
        k = self.n_stack
        ends = self.obs_end[batch_inds, env_indices]
        # k + 1 consecutive frames per transition: obs are the first k, next_obs the last k
        columns = (ends[:, None] + np.arange(-k + 1, 2)) % self.frames.shape[1]
        window = self.frames[env_indices[:, None], columns]
        window[np.arange(k + 1) < self.obs_pad[batch_inds, env_indices][:, None]] = 0
        if self.channels_first:
            stacks = window[:, :-1], window[:, 1:]
        else:
            window = np.moveaxis(window, 1, -1)
            stacks = window[..., :-1], window[..., 1:]
        # contiguous like SB3's batches, so that reward_fn's float reductions add up in the same order
        return np.ascontiguousarray(stacks[0]), np.ascontiguousarray(stacks[1])

    def _batch_rewards(
        self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray, env: VecNormalize | None
    ) -> torch.Tensor:
        """The batch's ``(M, 1)`` rewards from the raw sampled stacks, actions and stored rewards: the stored ones,
        scaled by ``env`` (a ``VecNormalize``) when given, as in SB3."""
        return self.to_torch(self._normalize_reward(rewards, env))

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """SB3's ``ReplayBuffer._get_samples`` (same draw of environments from numpy's global RNG, same fields and
        dtypes, time-limit truncations not terminations), the stacks rebuilt from the frame rings."""
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))  # noqa: NPY002
        observations, next_observations = self._stacks(batch_inds, env_indices)
        actions = self.actions[batch_inds, env_indices, :]
        dones = self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
        rewards = self.rewards[batch_inds, env_indices].reshape(-1, 1)
        return ReplayBufferSamples(
            self.to_torch(self._normalize_obs(observations, env)),
            self.to_torch(actions),
            self.to_torch(self._normalize_obs(next_observations, env)),
            self.to_torch(dones.reshape(-1, 1)),
            self._batch_rewards(observations, actions, rewards, env),
        )


class RelabelingFrameStackReplayBuffer(RewardRelabeling, FrameStackReplayBuffer):
    """:class:`FrameStackReplayBuffer` whose sampled rewards are ``reward_fn(stacked obs, actions)``, recomputed at
    every sample as in :class:`~sobirl.agents.RelabelingReplayBuffer` (same ``reward_fn`` and ``clip``; the raw
    uint8 stacks in the observation space's layout reach ``reward_fn`` as floats, unscaled).

    Pass ``replay_buffer_kwargs={"n_stack": k, "reward_fn": ...}``; the other arguments are
    :class:`FrameStackReplayBuffer`'s.
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
        n_stack: int,
        reward_fn: StepRewardFn,
        clip: float | None = None,
        frame_capacity: int | None = None,
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
            n_stack=n_stack,
            frame_capacity=frame_capacity,
        )

    def _batch_rewards(
        self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray, env: VecNormalize | None
    ) -> torch.Tensor:
        """:meth:`relabel` of the raw sampled stacks and actions; the stored rewards are ignored."""
        return self.relabel(observations, actions)
