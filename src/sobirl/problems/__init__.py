"""Ready-made bilevel RL problems: each builder returns a :class:`~sobirl.tabular.BilevelProblem` with ``x0``."""

from sobirl.problems.random_mdp import random_mdp

__all__ = ["random_mdp"]
