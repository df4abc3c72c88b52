"""Robot navigation: a designer shapes a robot's reward so that it reaches its goal the way the designer wants
(docs/problems/navigation.md).

A grid map (:data:`MAP`; ``#`` obstacle, ``H`` hazard, ``C`` preferred corridor, ``S`` start, ``G`` goal, ``.``
free) on the slippery grid of :func:`~sobirl.problems.gridworld.gridworld_mdp`: four actions (up, right, down,
left), the intended move with probability ``1 - slip`` and each other move with ``slip / 3``; a move off the grid or
into an obstacle stays put. State ``row * side + col`` (obstacle cells are states that nothing enters; the start
distribution puts no mass there). The goal is terminal.

- Robot (follower): its own task reward ``r_task(s, a) = goal_reward`` at the goal and ``-step_cost`` elsewhere (it
  does not know about hazards or the corridor), plus the designer's bounded shaping bonus ``bound tanh(x[s])`` in
  every state: ``r_x(s, a) = r_task(s, a) + bound tanh(x[s])``, ``x in R^S``, entropy temperature ``tau``.
- Designer (leader): its own value of the robot's behaviour from the start, ``f(x, pi) = -V_D^pi(start)``, with reward
  ``r_D(s, a) = r_task(s, a) - hazard 1{s hazard} + corridor 1{s corridor}`` (no entropy, no shaping): a
  :class:`~sobirl.tabular.LeaderValue`, so every method of :func:`~sobirl.algorithms.solve` applies (hpgd and the
  model-free methods too).

The bonus is bounded so that, with ``bound + tau log 4 < step_cost`` (the defaults: 0.15 + 0.139 < 0.3), the robot's
reward plus its largest entropy bonus is negative in every cell but the goal: no loop of cells pays for itself, and
the designer cannot buy loitering (an unbounded bonus let gradient descent park the robot on a bonus cell for ever).

On :data:`MAP` every monotone route from the start (top left) to the goal (bottom right) has 18 steps; the unshaped
robot spreads over them, many through the ring of hazards around the upper obstacle block, while the designer wants
the corridor along the left column and the bottom row.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sobirl.problems.apprenticeship import discounted_occupancy
from sobirl.problems.figures import heatmap, mark_cells, new_figure, save
from sobirl.problems.gridworld import gridworld_mdp
from sobirl.tabular import BilevelProblem, LeaderValue, TabularMDP, lower_level, policy_value
from sobirl.tabular.mdp import DTYPE
from sobirl.validation import check_int, check_range

MAP = (
    "S.........",
    "C.........",
    "C..HHHH...",
    "C..H##H...",
    "C..H##H...",
    "C..HHHH...",
    "C.........",
    "C....##...",
    "C....##...",
    "CCCCCCCCCG",
)
"""The default map, one string per row: ``#`` obstacle, ``H`` hazard, ``C`` corridor, ``S`` start, ``G`` goal."""

CELLS = "#HCSG."
"""The characters a map may hold."""

X0_STD = 0.01
"""Standard deviation of the seeded initial shaping ``x0`` (a nearly unshaped start)."""

BETA, CLIP = 5.0, 1.0
"""The leader step and gradient-norm clipping :func:`navigation` suggests to every method."""

ZETA = 0.5
"""M-SoBiRL's adjoint step on :func:`navigation`: below ``2 / (1 + gamma)^2 >= 2 / |A_k|_2^2`` (0.526 at the default
``gamma = 0.95``), so the step on ``w`` contracts (the conservative default ``1 / L_k`` is 0.19 at ``x0``)."""


def parse_map(rows: tuple[str, ...] | list[str]) -> dict[str, torch.Tensor]:
    """The cells of a square map as boolean ``(S,)`` masks by character, state ``row * side + col``.

    Raises:
        ValueError: the map is not square (at least 2 x 2), holds a character outside :data:`CELLS`, or does not
            have exactly one ``S`` and one ``G``.
    """
    rows = list(rows)
    side = len(rows)
    if side < 2 or any(len(row) != side for row in rows):
        raise ValueError(
            f"map must be a square of at least 2 x 2 characters, got rows of lengths {[len(r) for r in rows]}"
        )
    text = "".join(rows)
    unknown = sorted(set(text) - set(CELLS))
    if unknown:
        raise ValueError(f"map holds unknown characters {unknown}; valid: {', '.join(CELLS)}")
    for ch in "SG":
        if text.count(ch) != 1:
            raise ValueError(f"map must hold exactly one {ch!r}, got {text.count(ch)}")
    return {ch: torch.tensor([c == ch for c in text]) for ch in CELLS}


def obstacle_mdp(
    side: int,
    obstacles: torch.Tensor,
    *,
    slip: float,
    gamma: float,
    tau: float,
    rho: torch.Tensor,
    terminal: torch.Tensor,
) -> TabularMDP:
    """:func:`~sobirl.problems.gridworld.gridworld_mdp` with the moves into ``obstacles`` (bool ``(S,)``) staying put,
    as a dense MDP (``(S, 4, S)``, so PARL applies too)."""
    grid = gridworld_mdp(side, slip=slip, gamma=gamma, tau=tau)
    S, A = grid.shape
    coo = grid.P.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    cols = torch.where(obstacles[cols], torch.div(rows, A, rounding_mode="floor"), cols)
    P = torch.zeros(S * A, S, dtype=DTYPE).index_put_((rows, cols), coo.values(), accumulate=True)
    return TabularMDP(P.view(S, A, S), gamma=gamma, tau=tau, rho=rho, terminal=terminal)


def navigation(
    *,
    slip: float = 0.1,
    gamma: float = 0.95,
    tau: float = 0.1,
    step_cost: float = 0.3,
    goal_reward: float = 1.0,
    hazard: float = 1.0,
    corridor: float = 0.1,
    bound: float = 0.15,
    seed: int = 0,
    grid_map: tuple[str, ...] | list[str] = MAP,
) -> BilevelProblem:
    """Build the navigation problem (module docstring; docs/problems/navigation.md).

    Args:
        slip: probability mass moved from the intended move to the three others, in ``[0, 1]``.
        gamma: discount of robot and designer, in ``[0, 1)``.
        tau: the robot's entropy temperature, ``> 0``; keep ``step_cost > bound + tau log 4`` (module docstring).
        step_cost: the task's cost of every step outside the goal, ``>= 0``.
        goal_reward: the task's reward at the goal (the robot's and the designer's), ``>= 0``.
        hazard: the designer's penalty per step in a hazard cell, ``>= 0``.
        corridor: the designer's reward per step in a corridor cell, ``>= 0``.
        bound: the largest shaping bonus in absolute value, ``> 0``: the bonus is ``bound tanh(x[s])``.
        seed: seeds ``x0 ~ N(0, X0_STD^2 I)``.
        grid_map: the map (see :func:`parse_map`).

    Returns:
        The problem (``x in R^S``), with the extra attributes ``side``, ``cells`` (:func:`parse_map`), ``start``,
        ``goal`` (state indices), ``task_reward`` and ``designer_reward`` (``(S, A)``), ``designer_value`` (the
        designer's :class:`~sobirl.tabular.LeaderValue`) and ``shaping`` (``x -> bound tanh(x)``, ``(S,)``).

    Raises:
        TypeError, ValueError: naming the field and its allowed values.
    """
    cells = parse_map(grid_map)
    side = len(grid_map)
    step_cost = check_range("step_cost", step_cost, low=0.0)
    goal_reward = check_range("goal_reward", goal_reward, low=0.0)
    bound = check_range("bound", bound, low=0.0, low_open=True)
    hazard = check_range("hazard", hazard, low=0.0)
    corridor = check_range("corridor", corridor, low=0.0)
    check_int("seed", seed, low=0)
    start, goal = int(cells["S"].nonzero()), int(cells["G"].nonzero())
    rho = cells["S"].to(DTYPE)
    mdp = obstacle_mdp(side, cells["#"], slip=slip, gamma=gamma, tau=tau, rho=rho, terminal=cells["G"].clone())
    S, A = mdp.shape

    task = torch.full((S, A), -step_cost, dtype=DTYPE)
    task[goal] = goal_reward
    designer = task - hazard * cells["H"].to(DTYPE).unsqueeze(1) + corridor * cells["C"].to(DTYPE).unsqueeze(1)
    designer_value = LeaderValue(mdp, lambda x: designer)
    x0 = X0_STD * torch.randn(S, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)

    def shaping(x: torch.Tensor) -> torch.Tensor:
        return bound * torch.tanh(x)

    def reward(x: torch.Tensor) -> torch.Tensor:
        return task + shaping(x).unsqueeze(1)

    defaults = {"*": {"beta": BETA, "clip": CLIP}, "m-sobirl": {"zeta": ZETA}}
    prob = BilevelProblem(
        mdp, reward=reward, upper=designer_value, x0=x0, name=f"navigation-seed{seed}", defaults=defaults
    )
    prob.side, prob.cells, prob.start, prob.goal = side, cells, start, goal
    prob.task_reward, prob.designer_reward, prob.designer_value = task, designer, designer_value
    prob.shaping = shaping
    return prob


def behaviour(prob: BilevelProblem, x: torch.Tensor) -> dict[str, float]:
    """What the designer cares about, for the robot ``pi*(x)`` of :func:`navigation` from the start (discounted):
    ``designer_value``, ``hazard_visits``, ``corridor_visits``, ``goal`` (``E[gamma^T]`` of reaching it) and the
    robot's own ``task_value``."""
    mdp = prob.mdp
    S, A = mdp.shape
    pi = lower_level(prob, x).pi

    def value(table: torch.Tensor) -> float:
        return (mdp.rho @ policy_value(mdp, pi, table.expand(S, A))).item()

    goal = torch.zeros(S, 1, dtype=DTYPE)
    goal[prob.goal] = 1.0
    return {
        "designer_value": value(prob.designer_reward),
        "hazard_visits": value(prob.cells["H"].to(DTYPE).unsqueeze(1)),
        "corridor_visits": value(prob.cells["C"].to(DTYPE).unsqueeze(1)),
        "goal": value(goal),
        "task_value": value(prob.task_reward),
    }


def plot_solution(prob: BilevelProblem, x: torch.Tensor, path: str | Path, *, title: str = "") -> Path:
    """A PNG of a shaping ``x`` of :func:`navigation` on the grid: the shaping bonus ``bound tanh(x[s])`` with hazards
    and corridor marked, and the robot's discounted state occupancy from the start without and with the shaping
    (obstacles grey)."""
    side, cells = prob.side, prob.cells
    walls = cells["#"].view(side, side)
    with torch.no_grad():
        bonus = prob.shaping(x.detach().to(DTYPE))
    fig, axes = new_figure(3, width=4.0, height=3.6)
    heatmap(axes[0], bonus.view(side, side), title="shaping bonus", mask=walls, cmap="coolwarm", symmetric=True)
    for ax, point, name in ((axes[1], torch.zeros_like(x), "robot, unshaped"), (axes[2], x, "robot, shaped")):
        visits = discounted_occupancy(prob.mdp, lower_level(prob, point).pi, prob.mdp.rho)
        heatmap(ax, visits.view(side, side), title=f"{name}: discounted visits", mask=walls)
    for ax in axes:
        mark_cells(ax, cells["H"], side, marker="x", label="hazard", color="r")
        mark_cells(ax, cells["C"], side, marker=".", label="corridor", color="w")
        mark_cells(ax, cells["S"] | cells["G"], side, marker="*", label="start, goal", color="y")
    axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncols=3, fontsize=7, frameon=False)
    stats = behaviour(prob, x)
    fig.suptitle(
        title
        or f"{prob.name}: designer value {stats['designer_value']:.3f}, hazard visits {stats['hazard_visits']:.3f}, "
        f"corridor visits {stats['corridor_visits']:.2f}"
    )
    return save(fig, path)
