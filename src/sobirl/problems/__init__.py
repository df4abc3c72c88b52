"""Ready-made bilevel RL problems: each builder returns a :class:`~sobirl.tabular.BilevelProblem` with ``x0``."""

from collections.abc import Callable

from sobirl.problems.apprenticeship import apprenticeship
from sobirl.problems.contract_design import contract_design
from sobirl.problems.four_rooms import four_rooms
from sobirl.problems.gridworld import gridworld_problem
from sobirl.problems.gridworld_shaping import gridworld_shaping
from sobirl.problems.navigation import navigation
from sobirl.problems.random_mdp import random_mdp
from sobirl.problems.tabular_rlhf import tabular_rlhf
from sobirl.tabular.problem import BilevelProblem

__all__ = [
    "PROBLEMS",
    "apprenticeship",
    "contract_design",
    "four_rooms",
    "gridworld_problem",
    "gridworld_shaping",
    "navigation",
    "random_mdp",
    "tabular_rlhf",
]

PROBLEMS: dict[str, Callable[..., BilevelProblem]] = {
    "random-mdp": random_mdp,
    "four-rooms": four_rooms,
    "gridworld": gridworld_problem,
    "gridworld-shaping": gridworld_shaping,
    "tabular-rlhf": tabular_rlhf,
    "apprenticeship": apprenticeship,
    "contract-design": contract_design,
    "navigation": navigation,
}
"""Problem builders by command-line name (``sobirl compare --problem NAME``)."""
