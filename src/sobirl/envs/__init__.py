"""Environments: sampling-based access to tabular MDPs (batched trajectory rollouts, a gymnasium environment), and
fixed-horizon episodes with an absorbing state after termination (:mod:`sobirl.envs.absorbing`)."""

from sobirl.envs.absorbing import AbsorbingTermination, absorbing_env
from sobirl.envs.sampler import Trajectories, sample_actions, sample_trajectories
from sobirl.envs.tabular_env import TabularEnv

__all__ = [
    "AbsorbingTermination",
    "TabularEnv",
    "Trajectories",
    "absorbing_env",
    "sample_actions",
    "sample_trajectories",
]
