"""Environments: sampling-based access to tabular MDPs (batched trajectory rollouts, a gymnasium environment),
fixed-horizon episodes with an absorbing state after termination (:mod:`sobirl.envs.absorbing`), and Atari games as
stacked 84x84 frames (:mod:`sobirl.envs.atari`, the ``atari`` extra). Importing it registers sobirl's gymnasium ids
(:mod:`sobirl.envs.registration`: ``sobirl/Tabular-v0``, ``sobirl/Atari-v0``)."""

from sobirl.envs.absorbing import AbsorbingTermination, absorbing_env
from sobirl.envs.atari import is_atari, make_atari
from sobirl.envs.registration import ATARI_ENV_ID, TABULAR_ENV_ID, register_envs
from sobirl.envs.sampler import Trajectories, sample_actions, sample_trajectories
from sobirl.envs.tabular_env import TabularEnv, make_tabular_env

register_envs()

__all__ = [
    "ATARI_ENV_ID",
    "TABULAR_ENV_ID",
    "AbsorbingTermination",
    "TabularEnv",
    "Trajectories",
    "absorbing_env",
    "is_atari",
    "make_atari",
    "make_tabular_env",
    "register_envs",
    "sample_actions",
    "sample_trajectories",
]
