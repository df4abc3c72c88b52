"""Environments: sampling-based access to tabular MDPs (batched trajectory rollouts, a gymnasium environment),
fixed-horizon episodes with an absorbing state after termination (:mod:`sobirl.envs.absorbing`), and Atari games as
stacked 84x84 frames (:mod:`sobirl.envs.atari`, the ``atari`` extra)."""

from sobirl.envs.absorbing import AbsorbingTermination, absorbing_env
from sobirl.envs.atari import is_atari, make_atari
from sobirl.envs.sampler import Trajectories, sample_actions, sample_trajectories
from sobirl.envs.tabular_env import TabularEnv

__all__ = [
    "AbsorbingTermination",
    "TabularEnv",
    "Trajectories",
    "absorbing_env",
    "is_atari",
    "make_atari",
    "sample_actions",
    "sample_trajectories",
]
