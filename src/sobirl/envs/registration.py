"""sobirl's gymnasium environment ids, registered when :mod:`sobirl.envs` is imported.

- :data:`TABULAR_ENV_ID` (``sobirl/Tabular-v0``): a :class:`~sobirl.envs.TabularEnv` built by
  :func:`~sobirl.envs.tabular_env.make_tabular_env` from keyword arguments (``mdp``, ``reward``; without them a random
  MDP from ``seed``), no time limit unless ``max_episode_steps`` is given to ``gymnasium.make``.
- :data:`ATARI_ENV_ID` (``sobirl/Atari-v0``): an Atari game with the preprocessing of :func:`~sobirl.envs.make_atari`
  (``game``, ``frame_stack``, ``terminal_on_life_loss``, ``noop_max``), a time limit in agent steps through
  ``max_episode_steps``; the ``atari`` extra.

Both ids go through ``gymnasium.make`` like any other, so ``env.spec`` rebuilds the environment
(``env.spec.make()``) and ``gymnasium.make_vec`` vectorises it. From another process that has not imported sobirl,
``gymnasium.make("sobirl.envs:sobirl/Tabular-v0", ...)`` imports this package first.
"""

from __future__ import annotations

import gymnasium as gym

TABULAR_ENV_ID = "sobirl/Tabular-v0"
"""The id of :class:`~sobirl.envs.TabularEnv` (entry point :func:`~sobirl.envs.tabular_env.make_tabular_env`)."""
ATARI_ENV_ID = "sobirl/Atari-v0"
"""The id of a preprocessed Atari game (entry point :func:`~sobirl.envs.atari.atari_env`)."""

_ENTRY_POINTS = {
    TABULAR_ENV_ID: "sobirl.envs.tabular_env:make_tabular_env",
    ATARI_ENV_ID: "sobirl.envs.atari:atari_env",
}


def register_envs() -> None:
    """Register sobirl's ids with gymnasium (:data:`TABULAR_ENV_ID`, :data:`ATARI_ENV_ID`); ids already registered
    are left as they are, so calling it again (a re-import) changes nothing and warns of nothing."""
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point)
