"""Gymnasium environments: a tabular MDP as an environment (:mod:`sobirl.envs.tabular_env`), fixed-horizon episodes
with an absorbing state after termination (:mod:`sobirl.envs.absorbing`), and Atari games as stacked 84x84 frames
(:mod:`sobirl.envs.atari`, the ``atari`` extra). Importing it registers sobirl's gymnasium ids
(:mod:`sobirl.envs.registration`: ``sobirl/Tabular-v0``, ``sobirl/Atari-v0``). :func:`sample_trajectories` lives in
:mod:`sobirl.tabular.sampler` and is re-exported here, where the README names it."""

from sobirl.envs.absorbing import AbsorbingTermination, absorbing_env
from sobirl.envs.atari import is_atari, make_atari
from sobirl.envs.registration import ATARI_ENV_ID, TABULAR_ENV_ID, register_envs
from sobirl.envs.tabular_env import TabularEnv, make_tabular_env
from sobirl.tabular.sampler import sample_trajectories

register_envs()

__all__ = [
    "ATARI_ENV_ID",
    "TABULAR_ENV_ID",
    "AbsorbingTermination",
    "TabularEnv",
    "absorbing_env",
    "is_atari",
    "make_atari",
    "make_tabular_env",
    "register_envs",
    "sample_trajectories",
]
