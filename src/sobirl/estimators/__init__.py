"""Sample-based estimators for model-free SoBiRL: the exploration term ``sum_i w_i (dQ/dx - dV/dx)``."""

from sobirl.estimators.sensitivity import ESTIMATORS, default_horizon, exploration_term, exploration_weights

__all__ = ["ESTIMATORS", "default_horizon", "exploration_term", "exploration_weights"]
