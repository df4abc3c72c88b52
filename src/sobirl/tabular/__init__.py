"""Tabular bilevel RL with known transitions: the exact oracle every estimator is checked against, and batched
trajectory sampling in the same MDPs (:mod:`sobirl.tabular.sampler`)."""

from sobirl.tabular.contexts import Context, ContextualProblem, contextual_problem
from sobirl.tabular.evaluation import LeaderValue, policy_value
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
from sobirl.tabular.sampler import Trajectories, sample_actions, sample_trajectories
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
    "Context",
    "ContextualProblem",
    "ConvergenceError",
    "HypergradientInfo",
    "LeaderValue",
    "LinearSolveError",
    "SoftSolution",
    "TabularMDP",
    "Trajectories",
    "contextual_problem",
    "hypergradient",
    "hypergradient_info",
    "hyperobjective",
    "lower_level",
    "policy_value",
    "sample_actions",
    "sample_trajectories",
    "soft_bellman",
    "soft_policy_iteration",
    "soft_value_iteration",
]
