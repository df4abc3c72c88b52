"""The follower's own training episodes, with the environment's true reward, captured from vectorised steps.

An :class:`EpisodeRecorder` is fed, once per vectorised step, what ``n`` parallel environments did: for each
environment ``i`` the observation ``s_t`` the action was taken in, the action ``a_t``, the true reward
``r_t = r(s_t, a_t)`` and whether the episode ended with that step. It keeps each running episode in a buffer and
turns it into a :class:`Trajectory` when it ends; the finished ones are stored up to ``max_steps`` steps in all,
oldest evicted first.

Two step conventions are understood:

- Stable-Baselines3 ``VecEnv``: ``dones[i] = terminated or truncated``; ``infos[i]["TimeLimit.truncated"]`` is True
  when the episode was cut by a time limit and did not terminate; ``infos[i]["terminal_observation"]`` holds the
  observation the episode ended in (the VecEnv has already reset, so the returned observation belongs to the next
  episode). A done without ``"TimeLimit.truncated"`` counts as a termination.
- gymnasium: ``terminated`` and ``truncated`` arrays (both may be True at the same step); with a gymnasium vector
  environment ``infos`` is a dict and the final observation is read from ``infos["final_obs"]`` where
  ``infos["_final_obs"]`` is set (``AutoresetMode.SAME_STEP``).

Autoreset: SB3 VecEnvs and gymnasium's ``SAME_STEP`` mode start the next episode in the step that ends the previous
one (``autoreset="same-step"``). gymnasium's default ``NEXT_STEP`` mode spends the step after an end on the reset: its
action is ignored and its reward is 0, so with ``autoreset="next-step"`` the recorder skips, for each environment,
the step that follows an end.

The observation passed must be the one the action was taken in (``s_t``, not the returned ``s_{t+1}``): in an SB3
callback's ``_on_step`` that is ``model._last_obs`` (``_last_original_obs`` under ``VecNormalize``), which SB3 only
overwrites after the callback has run.

Frame stacks (Atari, ``frame_stack=k``): a finished episode of ``T`` stacks is kept as its ``T + k - 1`` distinct frames
(:mod:`sobirl.rlhf.frame_stacks`), its ``observations`` a read-only view of them, so the kept episodes take a quarter
of the memory at ``k = 4`` (1.4 GB -> about 0.36 GB for the paper's 50,000 BeamRider steps), in a pickle too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sobirl.rlhf.frame_stacks import frames_of, stack_view
from sobirl.validation import check_choice, check_int

AUTORESET_MODES = ("same-step", "next-step")
"""When a vectorised environment starts the next episode (module docstring)."""

_INITIAL_CAPACITY = 64
"""Steps per environment the running-episode buffers start with; they double when an episode outgrows them."""


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One finished episode of ``T >= 1`` steps, as numpy arrays (the environments and SB3 speak numpy; the
    preference model converts a batch of fragments to torch when it trains).

    Attributes:
        observations: ``s_0 .. s_{T-1}``, ``(T, *obs_shape)`` (``(T, obs_dim)`` for a 1-D Box), the observation each
            action was taken in, in the environment's dtype (a read-only view of the distinct frames where
            :meth:`of_frames` made the trajectory).
        actions: ``a_0 .. a_{T-1}``, ``(T, *act_shape)``: ``(T, act_dim)`` for a Box, ``(T,)`` for Discrete.
        true_rewards: ``r_0 .. r_{T-1}``, float64 ``(T,)``: the environment's reward, for the synthetic labeller only.
        terminated: the episode reached a terminal state of the MDP.
        truncated: the episode was cut (a time limit); may be True together with ``terminated`` (gymnasium).
        final_observation: the observation after the last action, ``obs_shape``, where the step data carried it
            (``terminal_observation`` / ``final_obs``), else None.
        frames: what a person is shown of each step, uint8 ``(T, H, W, 3)``: the image of the state ``s_t`` each
            action was taken in (:class:`sobirl.rlhf.human.RenderFrames`), or None.
    """

    observations: np.ndarray
    actions: np.ndarray
    true_rewards: np.ndarray
    terminated: bool
    truncated: bool
    final_observation: np.ndarray | None = None
    frames: np.ndarray | None = None

    def __post_init__(self) -> None:
        T = len(self.true_rewards)
        if self.true_rewards.ndim != 1 or T < 1:
            raise ValueError(f"true_rewards must have shape (T,) with T >= 1, got {self.true_rewards.shape}")
        for name in ("observations", "actions", *(("frames",) if self.frames is not None else ())):
            if len(getattr(self, name)) != T:
                raise ValueError(f"{name} must have T = {T} rows (one per reward), got {getattr(self, name).shape}")

    def __len__(self) -> int:
        """The number of steps ``T``."""
        return len(self.true_rewards)

    def true_return(self, discount: float = 1.0) -> float:
        """``sum_t discount^t r_t`` over the whole episode."""
        return float(np.sum(self.true_rewards * discount ** np.arange(len(self))))

    @classmethod
    def of_frames(
        cls,
        frames: np.ndarray,
        n_stack: int,
        actions: np.ndarray,
        true_rewards: np.ndarray,
        terminated: bool,
        truncated: bool,
        final_observation: np.ndarray | None = None,
    ) -> Trajectory:
        """A trajectory of ``T`` frame stacks held as their ``T + n_stack - 1`` distinct frames (``frames``, from
        :func:`sobirl.rlhf.frame_stacks.frames_of` with ``axis=0``): ``observations`` is a read-only view of
        ``frames``, and a pickle keeps only the frames."""
        traj = cls(stack_view(frames, n_stack, axis=0), actions, true_rewards, terminated, truncated, final_observation)
        object.__setattr__(traj, "_frames", (frames, n_stack))
        return traj

    def __getstate__(self) -> dict[str, Any]:
        """The fields, without the view of the frames where :meth:`of_frames` made the trajectory."""
        state = dict(self.__dict__)
        if "_frames" in state:
            state["observations"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """The fields, the view of the frames rebuilt where :meth:`of_frames` made the trajectory."""
        if "_frames" in state:
            frames, n_stack = state["_frames"]
            state = {**state, "observations": stack_view(frames, n_stack, axis=0)}
        for key, value in state.items():
            object.__setattr__(self, key, value)  # a frozen dataclass


class EpisodeRecorder:
    """Captures ``n_envs`` parallel environments' episodes from batched step data (module docstring).

    Args:
        n_envs: number of parallel environments (an integer ``>= 1``).
        max_steps: the finished trajectories kept hold at most this many steps in all; the oldest are evicted first,
            whole (a single trajectory longer than this is returned by :meth:`add` but not kept).
        autoreset: ``"same-step"`` (SB3 VecEnv, gymnasium ``SAME_STEP``) or ``"next-step"`` (gymnasium's default).
        frame_stack: ``k`` (an integer ``>= 1``) for observations that are stacks of ``k`` frames, ``(k,
            *frame_shape)``: finished trajectories are kept as their distinct frames (module docstring), and an
            episode whose stacks do not overlap so is refused with a ``ValueError``; None: kept whole.
        frame_steps: keep the rendered images SB3's ``infos[i]["frame"]`` carry
            (:class:`sobirl.rlhf.human.RenderFrames`) as :attr:`Trajectory.frames` for at most this many steps of the
            newest finished trajectories (older ones lose their frames); 0: none.

    Memory: the finished trajectories (at most ``max_steps`` steps) plus one running-episode buffer of
    ``n_envs x (longest episode so far, rounded up to a power of two)`` steps; a time limit bounds the latter. Frames:
    at most ``frame_steps`` images of finished trajectories plus those of the running episodes.
    """

    frame_stack: int | None = None
    """``k`` for frame stacks, else None (the class default: a recorder pickled before the option existed has none)."""

    frame_steps: int = 0
    """See the constructor (the class default: a recorder pickled before the option existed keeps no frames)."""

    def __init__(
        self,
        n_envs: int,
        *,
        max_steps: int = 1_000_000,
        autoreset: str = "same-step",
        frame_stack: int | None = None,
        frame_steps: int = 0,
    ) -> None:
        self.n_envs = check_int("n_envs", n_envs, low=1)
        self.frame_steps = check_int("frame_steps", frame_steps)
        self._running_frames: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
        self._framed: deque[Trajectory] = deque()  # the kept trajectories that hold frames, oldest first
        self.max_steps = check_int("max_steps", max_steps, low=1)
        self.autoreset = check_choice("autoreset", autoreset, AUTORESET_MODES)
        self.frame_stack = None if frame_stack is None else check_int("frame_stack", frame_stack, low=1)
        self._finished: deque[Trajectory] = deque()
        self._stored_steps = 0
        self.episodes_finished = 0
        """Episodes that ended since construction (also those evicted or never kept)."""
        self._lengths = np.zeros(n_envs, dtype=np.int64)
        self._resetting = np.zeros(n_envs, dtype=bool)  # "next-step" only: this env's next step is its reset
        self._obs: np.ndarray | None = None  # (n_envs, capacity, *obs_shape), allocated at the first step
        self._act: np.ndarray | None = None
        self._rew: np.ndarray | None = None

    @property
    def trajectories(self) -> list[Trajectory]:
        """The finished trajectories kept, oldest first."""
        return list(self._finished)

    @property
    def stored_steps(self) -> int:
        """Steps in the kept trajectories (``<= max_steps``)."""
        return self._stored_steps

    def drop_running(self) -> None:
        """Forget the steps of every episode still running (e.g. one that cannot continue after a restart)."""
        self._lengths[:] = 0
        if self.frame_steps:
            self._running_frames = [[] for _ in range(self.n_envs)]

    def __len__(self) -> int:
        """The number of kept trajectories."""
        return len(self._finished)

    def add(
        self,
        observations: ArrayLike,
        actions: ArrayLike,
        rewards: ArrayLike,
        *,
        dones: ArrayLike | None = None,
        infos: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        terminated: ArrayLike | None = None,
        truncated: ArrayLike | None = None,
    ) -> list[Trajectory]:
        """Record one vectorised step; return the trajectories that ended with it (in environment order).

        Args:
            observations: ``s_t`` per environment, ``(n_envs, *obs_shape)``: the observation the action was taken
                in, NOT the one the step returned.
            actions: ``a_t``, ``(n_envs, *act_shape)``.
            rewards: the true rewards ``r_t``, ``(n_envs,)``.
            dones: SB3 convention, bool ``(n_envs,)``; give it or ``terminated`` and ``truncated``, not both.
            infos: SB3's list of ``n_envs`` dicts (``"TimeLimit.truncated"``, ``"terminal_observation"``) or
                gymnasium's dict (``"final_obs"``, ``"_final_obs"``); optional.
            terminated, truncated: gymnasium convention, bool ``(n_envs,)``.
        """
        obs = np.asarray(observations)
        act = np.asarray(actions)
        rew = np.asarray(rewards, dtype=np.float64)
        terminated_, truncated_ = self._end_flags(dones, infos, terminated, truncated)
        n = self.n_envs
        for name, value in (("observations", obs), ("actions", act), ("rewards", rew)):
            if value.ndim < 1 or value.shape[0] != n:
                raise ValueError(f"{name} must have n_envs = {n} rows, got shape {value.shape}")
        if rew.ndim != 1:
            raise ValueError(f"rewards must have shape (n_envs,) = ({n},), got {rew.shape}")
        self._ensure_buffers(obs, act)
        assert self._obs is not None and self._act is not None and self._rew is not None

        recorded = ~self._resetting  # all True unless "next-step" marked an env's reset step
        rows = np.flatnonzero(recorded)
        if rows.size and self._lengths[rows].max() >= self._obs.shape[1]:
            self._grow()
        cols = self._lengths[rows]
        self._obs[rows, cols] = obs[rows]
        self._act[rows, cols] = act[rows]
        self._rew[rows, cols] = rew[rows]
        self._lengths[rows] += 1
        if self.frame_steps and infos is not None and not isinstance(infos, Mapping):
            for i in rows:  # one image per env and step, at most n_envs: a list append each
                if "frame" in infos[i]:
                    self._running_frames[i].append(infos[i]["frame"])

        ended = recorded & (terminated_ | truncated_)
        if self.autoreset == "next-step":
            self._resetting = ended
        finals = _final_observations(infos, ended)
        out = []
        for i in np.flatnonzero(ended):
            T = int(self._lengths[i])
            steps = (self._act[i, :T].copy(), self._rew[i, :T].copy(), bool(terminated_[i]), bool(truncated_[i]))
            final = None if finals[i] is None else np.array(finals[i])
            if self.frame_stack is None:
                traj = Trajectory(self._obs[i, :T].copy(), *steps, final)
            else:
                stacks = frames_of(self._obs[i, :T], self.frame_stack, axis=0)
                traj = Trajectory.of_frames(stacks, self.frame_stack, *steps, final)
            images = self._running_frames[i] if self.frame_steps else []
            if len(images) == T:  # every step rendered (not an episode running across a restart)
                object.__setattr__(traj, "frames", np.stack(images))
            if self.frame_steps:
                self._running_frames[i] = []
            out.append(traj)
            self._lengths[i] = 0
        for traj in out:
            self._keep(traj)
        return out

    def _end_flags(
        self,
        dones: ArrayLike | None,
        infos: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None,
        terminated: ArrayLike | None,
        truncated: ArrayLike | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(terminated, truncated)`` as bool ``(n_envs,)`` arrays from either convention."""
        gym_style = terminated is not None or truncated is not None
        if gym_style == (dones is not None) or (gym_style and (terminated is None or truncated is None)):
            raise ValueError("give either dones (SB3 VecEnv) or both terminated and truncated (gymnasium)")
        n = self.n_envs

        def flags(name: str, value: ArrayLike) -> np.ndarray:
            array = np.asarray(value, dtype=bool)
            if array.shape != (n,):
                raise ValueError(f"{name} must have shape (n_envs,) = ({n},), got {array.shape}")
            return array

        if gym_style:
            return flags("terminated", terminated), flags("truncated", truncated)
        done = flags("dones", dones)
        if infos is None:
            return done, np.zeros(n, dtype=bool)
        if isinstance(infos, Mapping) or len(infos) != n:
            raise ValueError(f"with dones, infos must be SB3's list of n_envs = {n} dicts")
        trunc = done & np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos])
        return done & ~trunc, trunc

    def _ensure_buffers(self, obs: np.ndarray, act: np.ndarray) -> None:
        """Allocate the running-episode buffers at the first step; later steps must match their shapes."""
        if self._obs is None:
            n, cap = self.n_envs, _INITIAL_CAPACITY
            self._obs = np.empty((n, cap, *obs.shape[1:]), dtype=obs.dtype)
            self._act = np.empty((n, cap, *act.shape[1:]), dtype=act.dtype)
            self._rew = np.empty((n, cap), dtype=np.float64)
            return
        assert self._act is not None
        for name, value, buf in (("observations", obs, self._obs), ("actions", act, self._act)):
            if value.shape[1:] != buf.shape[2:]:
                raise ValueError(f"{name} must keep the per-env shape {buf.shape[2:]}, got {value.shape[1:]}")

    def _grow(self) -> None:
        """Double the running-episode buffers (amortised O(1) per step)."""
        assert self._obs is not None and self._act is not None and self._rew is not None
        cap = self._obs.shape[1]

        def doubled(buf: np.ndarray) -> np.ndarray:
            new = np.empty((buf.shape[0], 2 * cap, *buf.shape[2:]), dtype=buf.dtype)
            new[:, :cap] = buf
            return new

        self._obs, self._act, self._rew = doubled(self._obs), doubled(self._act), doubled(self._rew)

    def _keep(self, traj: Trajectory) -> None:
        """Store a finished trajectory, then evict the oldest until at most ``max_steps`` steps are kept."""
        self.episodes_finished += 1
        self._finished.append(traj)
        self._stored_steps += len(traj)
        while self._stored_steps > self.max_steps:
            self._stored_steps -= len(self._finished.popleft())
        if traj.frames is not None:
            self._framed.append(traj)
            while sum(len(t) for t in self._framed) > self.frame_steps:
                object.__setattr__(self._framed.popleft(), "frames", None)  # the oldest images go first


def _final_observations(
    infos: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None, ended: np.ndarray
) -> list[Any | None]:
    """The observation each ended episode finished in, where ``infos`` carries it (module docstring)."""
    finals: list[Any | None] = [None] * len(ended)
    if infos is None:
        return finals
    if isinstance(infos, Mapping):
        if "final_obs" in infos:
            mask = infos.get("_final_obs", ended)
            for i in np.flatnonzero(ended & np.asarray(mask, dtype=bool)):
                finals[i] = infos["final_obs"][i]
        return finals
    for i in np.flatnonzero(ended):
        finals[i] = infos[i].get("terminal_observation")
    return finals
