"""Fixed-horizon episodes: after the environment terminates, the episode stays in one absorbing state.

Synthetic preferences compare the true returns of equal-length fragments of the agent's episodes. Where the reward
is the same at every step until the episode terminates (CartPole-v1: +1 per step), every fragment inside an
episode has the same return, every pair is a tie and the labels are coin flips: the preferences say nothing about
failing. Treating termination as entry into an absorbing state (reward 0 for ever, the MDP semantics of termination,
Sutton and Barto, section 3.4) keeps the episode running to its time limit, so a fragment that covers the failure
returns less than one that does not.

:class:`AbsorbingTermination` wraps an environment with 1-D Box observations and appends one coordinate, the
absorbing indicator: ``0`` on every real observation, and the absorbing state is the single observation
``(0, ..., 0, 1)``, the same whichever way the episode ended (as in Kostrikov et al. 2019, DAC). One state matters
for learning a reward from preferences: two fragments in the absorbing state then have exactly the same reward, so
their tie (a coin-flip label) has no gradient, where distinct terminal observations would let the reward net's
differences between them, summed over a fragment, dominate the loss.

The wrapper goes around a time-limited environment (``gymnasium.make(env_id, max_episode_steps=...)``,
:func:`absorbing_env`) and keeps its time limit, the horizon ``H = env.spec.max_episode_steps``, for the whole
episode: once the wrapped environment reports ``terminated`` every later ``step`` returns the absorbing state,
reward 0, ``terminated=False``, ``truncated=False`` and ``info["absorbing"] = True``, without stepping the wrapped
environment, until the episode's ``H``-th step, which returns ``truncated=True``; the step that terminates returns
the real terminal observation and reward (and ``truncated=True`` when it is the ``H``-th). ``absorbing_steps=k``
truncates the episode earlier, at its k-th absorbing step (``truncated=True``: a learner bootstraps from the
absorbing state's value, which stands for the rest of the horizon), so that a policy that fails early does not fill
its replay buffer with absorbing transitions: a fragment still covers a failure and what follows it when k is at
least the fragment length. With ``absorb=False`` the wrapper only appends the indicator (always 0) and passes
termination on: the evaluation environment of a policy trained with absorbing states.

The wrapper records its arguments (``gymnasium.utils.RecordConstructorArgs``) and sits outside the time limit, so
``env.spec`` rebuilds the same environment (``env.spec.make()``, ``gymnasium.make(env.spec)``: the time limit, then
this wrapper, as gymnasium applies a spec's ``max_episode_steps`` and ``additional_wrappers``), and
``env.spec.max_episode_steps`` is the horizon; gymnasium's ``check_env`` passes on it.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sobirl.validation import check_int


class AbsorbingTermination(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Termination becomes one absorbing state until the time limit; observations gain an indicator (module
    docstring).

    Args:
        env: an environment with a 1-D ``Box`` observation space and, with ``absorb``, a time limit in its spec
            (``gymnasium.make(env_id, max_episode_steps=...)``; :func:`absorbing_env` builds both).
        absorb: False: only append the indicator (0) and pass termination on, for evaluation.
        absorbing_steps: truncate the episode at this many steps in the absorbing state (``>= 1``); None: stay there
            until the time limit.

    Attributes:
        horizon: the episode length with ``absorb`` (``env.spec.max_episode_steps``); None without ``absorb``.

    Raises:
        ValueError: ``absorbing_steps < 1``, the observation space is not a 1-D Box, or ``absorb`` without a time
            limit (its episodes would never end).
    """

    def __init__(self, env: gym.Env, *, absorb: bool = True, absorbing_steps: int | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, absorb=absorb, absorbing_steps=absorbing_steps)
        gym.Wrapper.__init__(self, env)
        if absorbing_steps is not None:
            check_int("absorbing_steps", absorbing_steps, low=1)
        if not isinstance(absorb, bool):
            raise TypeError(f"absorb must be true or false, got {absorb!r}")
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(
                f"observation_space must be a 1-D Box for absorbing termination, got {space}; wrap the environment "
                "in gymnasium.wrappers.FlattenObservation"
            )
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if absorb and limit is None:
            name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
            raise ValueError(
                f"env {name!r} has no time limit; absorbing termination needs one: set max_episode_steps (e.g. "
                "gymnasium.make(env_id, max_episode_steps=...))"
            )
        self.horizon = limit if absorb else None
        low = np.append(space.low, 0).astype(space.dtype)
        high = np.append(space.high, 1).astype(space.dtype)
        self.observation_space = spaces.Box(low, high, dtype=space.dtype)
        self.absorb = absorb
        self.absorbing_steps = absorbing_steps
        self._absorbing = False
        self._absorbed = 0
        self._steps = 0
        self._state = np.zeros(self.observation_space.shape, dtype=space.dtype)
        self._state[-1] = 1

    def _real(self, observation: np.ndarray) -> np.ndarray:
        return np.append(observation, 0).astype(self.observation_space.dtype)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the wrapped environment; its observation with the indicator 0."""
        self._absorbing, self._absorbed, self._steps = False, 0, 0
        observation, info = self.env.reset(seed=seed, options=options)
        return self._real(observation), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """One step (module docstring): the wrapped environment's until it terminates, then the absorbing state."""
        self._steps += 1
        if self._absorbing:
            self._absorbed += 1
            truncated = self._steps >= self.horizon or (
                self.absorbing_steps is not None and self._absorbed >= self.absorbing_steps
            )
            return self._state.copy(), 0.0, False, truncated, {"absorbing": True}
        observation, reward, terminated, truncated, info = self.env.step(action)
        if terminated and self.absorb:
            self._absorbing, terminated = True, False
        return self._real(observation), reward, terminated, truncated, info


def absorbing_env(
    env_id: str,
    *,
    max_episode_steps: int | None = None,
    absorb: bool = True,
    absorbing_steps: int | None = None,
    **kwargs: Any,
) -> gym.Env:
    """``gym.make(env_id, max_episode_steps=...)`` wrapped in :class:`AbsorbingTermination`, so with ``absorb`` every
    episode lasts exactly the time limit (the registered one, or ``max_episode_steps``), or until ``absorbing_steps``
    steps in the absorbing state. Its ``spec`` rebuilds it (module docstring).

    Raises:
        ValueError: the environment has no time limit (its episodes would never end), or its observations are not
            a 1-D Box.
    """
    env = gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    if env.spec is None or env.spec.max_episode_steps is None:
        env.close()
        raise ValueError(f"env {env_id!r} has no time limit; absorbing termination needs one: set max_episode_steps")
    try:
        return AbsorbingTermination(env, absorb=absorb, absorbing_steps=absorbing_steps)
    except (ValueError, TypeError):
        env.close()
        raise
