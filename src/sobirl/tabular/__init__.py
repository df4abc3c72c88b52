"""Tabular bilevel RL with known transitions: the exact oracle every estimator is checked against."""

from sobirl.tabular.hypergrad import (
    HypergradientInfo,
    hypergradient,
    hypergradient_info,
    hyperobjective,
    lower_level,
)
from sobirl.tabular.linear import LinearSolveError
from sobirl.tabular.mdp import TabularMDP
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.soft import (
    SOLVERS,
    ConvergenceError,
    SoftSolution,
    soft_bellman,
    soft_policy_iteration,
    soft_value_iteration,
)

__all__ = [
    "SOLVERS",
    "BilevelProblem",
    "ConvergenceError",
    "HypergradientInfo",
    "LinearSolveError",
    "SoftSolution",
    "TabularMDP",
    "hypergradient",
    "hypergradient_info",
    "hyperobjective",
    "lower_level",
    "soft_bellman",
    "soft_policy_iteration",
    "soft_value_iteration",
]
