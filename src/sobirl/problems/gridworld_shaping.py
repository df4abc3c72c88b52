"""Reward shaping on a slippery grid: the leader shapes the follower's reward so that it solves the true task.

On the ``N x N`` grid of :func:`~sobirl.problems.gridworld.gridworld_mdp` (state ``row * N + col``, sparse
``P``), the follower starts in the top-left cell and the goal is the bottom-right cell, which is terminal:

- task reward ``r_task(s, a) = 1`` at the goal (collected there, nothing follows) and ``-step_cost`` elsewhere;
- follower reward ``r_x(s, a) = r_task(s, a) + x[s]``: one shaping bonus per state, ``x in R^S``;
- leader objective ``f(x, pi) = -V_task^pi(start) + 0.5 cost |x|^2``, where ``V_task^pi`` is the discounted
  task value of the follower's policy (no shaping, no entropy bonus).

The step cost must exceed the follower's largest entropy bonus per step, ``tau log 4`` (0.069 at the default
``tau``): living on collects ``tau H(pi)`` per step while the goal ends the episode, so with a smaller cost the
unshaped follower avoids the goal, its task value sits at ``-step_cost / (1 - gamma)`` and, on a large grid, the
hyper-gradient is exponentially small there. With the default cost the unshaped follower drifts to the goal
slowly (a biased random walk) and the leader's shaping makes it direct.
"""

from __future__ import annotations

import torch

from sobirl.problems.gridworld import gridworld_mdp
from sobirl.tabular import BilevelProblem, LeaderValue, TabularMDP
from sobirl.tabular.mdp import DTYPE
from sobirl.validation import check_int, check_range

X0_STD = 0.01
"""Standard deviation of the seeded initial shaping bonuses ``x0`` (a nearly unshaped start)."""


def gridworld_shaping(
    N: int,
    *,
    slip: float = 0.1,
    gamma: float = 0.99,
    tau: float = 0.05,
    cost: float = 1e-3,
    seed: int = 0,
    step_cost: float = 0.1,
) -> BilevelProblem:
    """Build the grid reward-shaping problem (see the module docstring for the definition).

    Args:
        N: grid side, an integer ``>= 2`` (``S = N**2`` states; the start and the goal must differ).
        slip: probability mass moved from the intended move to the three others, in ``[0, 1]``.
        gamma: discount of follower and leader, in ``[0, 1)``.
        tau: the follower's entropy temperature, ``> 0``.
        cost: weight of the leader's quadratic cost ``0.5 cost |x|^2``, ``>= 0``.
        seed: seeds ``x0 ~ N(0, X0_STD^2 I)``.
        step_cost: the task's cost of every step outside the goal, ``>= 0``.

    Returns:
        The problem on a sparse MDP (``nnz <= 16 S``) with the goal terminal and ``rho`` the start cell.

    Raises:
        TypeError, ValueError: naming the field and its allowed range.
    """
    check_int("N", N, low=2)
    cost = check_range("cost", cost, low=0.0)
    step_cost = check_range("step_cost", step_cost, low=0.0)
    check_int("seed", seed, low=0)
    grid = gridworld_mdp(N, slip=slip, gamma=gamma, tau=tau)
    S, A = grid.shape
    start, goal = 0, S - 1
    terminal = torch.zeros(S, dtype=torch.bool)
    terminal[goal] = True
    rho = torch.zeros(S, dtype=DTYPE)
    rho[start] = 1.0
    mdp = TabularMDP(grid.P, gamma=gamma, tau=tau, rho=rho, terminal=terminal)

    task = torch.full((S, A), -step_cost, dtype=DTYPE)
    task[goal] = 1.0
    task_value = LeaderValue(mdp, lambda x: task)
    x0 = X0_STD * torch.randn(S, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)

    def reward(x: torch.Tensor) -> torch.Tensor:
        return task + x.unsqueeze(1)

    def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        return task_value(x, pi) + 0.5 * cost * x.pow(2).sum()

    name = f"gridworld-shaping-{N}x{N}-seed{seed}"
    return BilevelProblem(mdp, reward=reward, upper=upper, x0=x0, name=name, defaults={"*": {"beta": 0.3, "clip": 1.0}})
