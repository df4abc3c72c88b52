"""Sampling-based access to tabular MDPs: batched trajectory rollouts (and, later, gymnasium environments)."""

from sobirl.envs.sampler import Trajectories, sample_actions, sample_trajectories

__all__ = ["Trajectories", "sample_actions", "sample_trajectories"]
