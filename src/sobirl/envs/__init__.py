"""Sampling-based access to tabular MDPs: batched trajectory rollouts and a gymnasium environment."""

from sobirl.envs.sampler import Trajectories, sample_actions, sample_trajectories
from sobirl.envs.tabular_env import TabularEnv

__all__ = ["TabularEnv", "Trajectories", "sample_actions", "sample_trajectories"]
