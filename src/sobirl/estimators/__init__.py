"""Sample-based estimators for model-free SoBiRL: the exploration term ``sum_i w_i (dQ/dx - dV/dx)``."""

from sobirl.estimators.sensitivity import ESTIMATORS, critic, exploration_term, monte_carlo, one_step

__all__ = ["ESTIMATORS", "critic", "exploration_term", "monte_carlo", "one_step"]
