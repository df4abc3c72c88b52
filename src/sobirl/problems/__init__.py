"""Ready-made bilevel RL problems: each builder returns a :class:`~sobirl.tabular.BilevelProblem` with ``x0``."""

from collections.abc import Callable

from sobirl.problems.gridworld import gridworld_problem
from sobirl.problems.random_mdp import random_mdp
from sobirl.tabular.problem import BilevelProblem

__all__ = ["PROBLEMS", "gridworld_problem", "random_mdp"]

PROBLEMS: dict[str, Callable[..., BilevelProblem]] = {
    "random-mdp": random_mdp,
    "gridworld": gridworld_problem,
}
"""Problem builders by command-line name (``sobirl compare --problem NAME``)."""
