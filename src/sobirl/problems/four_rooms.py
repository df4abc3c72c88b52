"""HPGD's four-rooms reward-shaping problem (Thoma, Pásztor, Krause, Ramponi, Hu, NeurIPS 2024).

The grid (13 x 13, ``x`` = wall) has 104 free cells; state ``i`` is the ``i``-th free cell in row-major order
(``problem.coords[i]`` is its ``(row, col)``). Four actions, up, right, down, left: the intended move happens
with probability ``1 - 4/3 fail_prob`` and each other move with probability ``(4/3 fail_prob) / 3`` (HPGD's
"choose a uniformly random action with probability 4/3 fail_prob"); a move into a wall stays put.

The follower starts at ``(4, 1)``. Two equally likely contexts put the goal at ``(1, 9)`` or ``(11, 11)``; the
goal is terminal (its reward is collected there and nothing follows). The leader's parameters ``x in R^105``
set incentives ``incentive(i) = -0.2 softmax(x)[i]`` on the 104 cells (the 105th softmax entry is an unused
slot, so the incentives need not spend the whole budget of -0.2). In each context:

- follower reward ``r_x(s, a) = 1{s = goal} + 1{s != goal} incentive(s)``, entropy temperature ``tau = lam``;
- leader reward ``r_L(s, a) = 1{s = target} - c 1{s = goal} sum_i |incentive(i)|`` with target ``(8, 4)``.

The leader maximises ``F(x) = mean_c V_L^{pi*_c(x)}(start)`` (discount ``gamma``, no entropy); the problem is
the minimisation of ``phi(x) = -F(x)``, from ``x0 = 0`` (uniform incentives).
"""

from __future__ import annotations

import torch

from sobirl.problems.gridworld import MOVES
from sobirl.tabular import Context, ContextualProblem, LeaderValue, TabularMDP, contextual_problem
from sobirl.tabular.mdp import DTYPE
from sobirl.validation import check_range

MAP = (
    "xxxxxxxxxxxxx",
    "x     x     x",
    "x     x     x",
    "x           x",
    "x     x     x",
    "x     x     x",
    "xx xxxx     x",
    "x     xxx xxx",
    "x     x     x",
    "x     x     x",
    "x           x",
    "x     x     x",
    "xxxxxxxxxxxxx",
)
"""HPGD's four-rooms map: ``x`` is a wall, a space a free cell."""

START = (4, 1)
GOALS = ((1, 9), (11, 11))
TARGET = (8, 4)
INCENTIVE_RANGE = -0.2
"""The incentives are ``INCENTIVE_RANGE * softmax(x)``: non-positive, summing to at least -0.2."""


def four_rooms(lam: float = 0.003, c: float = 1.0, fail_prob: float = 0.33, gamma: float = 0.99) -> ContextualProblem:
    """Build HPGD's four-rooms reward-shaping problem (see the module docstring for the definition).

    Args:
        lam: the follower's entropy temperature ``tau`` (> 0).
        c: the leader's cost per unit of incentive paid when the follower reaches the goal (>= 0).
        fail_prob: HPGD's failure probability in ``[0, 0.75]``; the intended move happens with probability
            ``1 - 4/3 fail_prob``.
        gamma: discount of both follower and leader, in ``[0, 1)``.

    Returns:
        A :class:`~sobirl.tabular.ContextualProblem` over the two goal contexts (context ``k`` has goal
        ``goals[k]``), minimising ``-F(x)``, with ``x0 = zeros(105)`` and the extra attributes ``coords``
        (``(104, 2)`` long tensor of ``(row, col)`` per state), ``start``, ``goals`` (tuple of two) and ``target``
        (state indices).

    Raises:
        ValueError: naming the field and its allowed range.
    """
    tau = check_range("lam", lam, low=0.0, low_open=True)
    c = check_range("c", c, low=0.0)
    fail_prob = check_range("fail_prob", fail_prob, low=0.0, high=0.75)
    gamma = check_range("gamma", gamma, low=0.0, high=1.0, high_open=True)

    free = torch.tensor([[ch == " " for ch in row] for row in MAP])
    coords = free.nonzero()  # row-major order: state i is the i-th free cell
    S, A = coords.shape[0], len(MOVES)
    index = torch.full(free.shape, -1, dtype=torch.long)
    index[free] = torch.arange(S)

    # Successor of each (state, actual move); the map's border is walls, so neighbours never leave the grid.
    target_cells = coords.unsqueeze(1) + torch.tensor(MOVES).unsqueeze(0)  # (S, 4, 2)
    landed = index[target_cells[..., 0], target_cells[..., 1]]
    successor = torch.where(landed >= 0, landed, torch.arange(S).unsqueeze(1))  # into a wall: stay put
    slip = 4.0 / 3.0 * fail_prob
    move_prob = torch.full((A, A), slip / (A - 1), dtype=DTYPE)
    move_prob.fill_diagonal_(1.0 - slip)
    P = torch.einsum("am,smt->sat", move_prob, torch.nn.functional.one_hot(successor, S).to(DTYPE))

    def state(cell: tuple[int, int]) -> int:
        return int(index[cell])

    start, goals, target = state(START), tuple(state(g) for g in GOALS), state(TARGET)
    rho = torch.nn.functional.one_hot(torch.tensor(start), S).to(DTYPE)
    target_reward = torch.zeros(S, A, dtype=DTYPE)
    target_reward[target] = 1.0

    def incentives(x: torch.Tensor) -> torch.Tensor:
        return INCENTIVE_RANGE * torch.softmax(x, dim=0)[:S]

    def context(goal: int) -> Context:
        at_goal = torch.zeros(S, dtype=torch.bool)
        at_goal[goal] = True
        mdp = TabularMDP(P, gamma=gamma, tau=tau, rho=rho, terminal=at_goal)
        goal_column = at_goal.to(DTYPE).unsqueeze(1)

        def reward(x: torch.Tensor) -> torch.Tensor:
            return torch.where(at_goal, 1.0, incentives(x)).unsqueeze(1).expand(S, A)

        def leader_reward(x: torch.Tensor) -> torch.Tensor:
            return target_reward - c * goal_column * incentives(x).abs().sum()

        return Context(mdp, reward, LeaderValue(mdp, leader_reward, rho=rho), weight=0.5)

    # beta = 2 with clipping at 1: every method raises F from uniform incentives (HPGD's experiments also clip at 1).
    prob = contextual_problem(
        [context(goal) for goal in goals],
        x0=torch.zeros(S + 1, dtype=DTYPE),
        name="four-rooms",
        defaults={"*": {"beta": 2.0, "clip": 1.0}},
    )
    prob.coords = coords
    prob.start, prob.goals, prob.target = start, goals, target
    return prob
