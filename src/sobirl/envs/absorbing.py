"""Fixed-horizon episodes: after the environment terminates, the episode stays in an absorbing state.

Synthetic preferences compare the true returns of equal-length fragments of the agent's episodes. Where the reward
is the same at every step until the episode terminates (CartPole-v1: +1 per step), every fragment inside an
episode has the same return, every pair is a tie and the labels are coin flips: the preferences say nothing about
failing. Treating termination as entry into an absorbing state (the terminal observation, reward 0, for ever, as
the MDP's semantics of termination say, Sutton and Barto, section 3.4) keeps the episode running to its time limit,
so a fragment that covers the failure returns less than one that does not. This is what seals' fixed-horizon
CartPole does for reward learning, without changing the environment's dynamics before termination.

:class:`AbsorbingTermination` wraps an environment (under its ``TimeLimit``, which then ends every episode): once the
wrapped environment reports ``terminated``, every later ``step`` returns the terminal observation, reward 0,
``terminated=False``, ``truncated=False`` and ``info["absorbing"] = True``, without stepping the wrapped environment.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym


class AbsorbingTermination(gym.Wrapper):
    """Termination becomes an absorbing state until the time limit (module docstring).

    Args:
        env: the environment; the result needs a ``gymnasium.wrappers.TimeLimit`` around it, or episodes never end
            (:func:`absorbing_env` builds both).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._terminal: tuple[Any, dict[str, Any]] | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._terminal = None
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._terminal is not None:
            observation, info = self._terminal
            return observation, 0.0, False, False, {**info, "absorbing": True}
        observation, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            self._terminal = (observation, info)
            terminated = False
        return observation, reward, terminated, truncated, info


def absorbing_env(env_id: str, *, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, max_episode_steps=...)`` with :class:`AbsorbingTermination` just inside its time limit, so
    every episode lasts exactly the time limit (the registered one, or ``max_episode_steps``).

    Raises:
        ValueError: the environment has no time limit (its episodes would never end).
    """
    env = gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    if not isinstance(env, gym.wrappers.TimeLimit):
        env.close()
        raise ValueError(f"env {env_id!r} has no time limit; absorbing termination needs one: set max_episode_steps")
    return gym.wrappers.TimeLimit(AbsorbingTermination(env.env), max_episode_steps=env.spec.max_episode_steps)
