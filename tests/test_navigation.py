"""Robot navigation: the map, obstacles, the designer's objective, the hyper-gradient and the shaped robot."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import F64, central_difference
from sobirl.algorithms import solve
from sobirl.experiments.compare import validate
from sobirl.problems import PROBLEMS, navigation
from sobirl.problems.navigation import MAP, behaviour, parse_map
from sobirl.tabular import LeaderValue, hypergradient, hyperobjective, lower_level


def test_registered_and_builds_the_map():
    assert PROBLEMS["navigation"] is navigation
    prob = navigation()
    S, A = 100, 4
    mdp, cells = prob.mdp, prob.cells
    assert mdp.shape == (S, A) and not mdp.is_sparse and (mdp.gamma, mdp.tau) == (0.95, 0.1)
    assert (
        prob.start == 0 and prob.goal == 99 and mdp.rho[0] == 1.0 and mdp.terminal.nonzero().flatten().tolist() == [99]
    )
    assert (cells["#"].sum().item(), cells["H"].sum().item(), cells["C"].sum().item()) == (8, 12, 17)
    assert isinstance(prob.upper_fn, LeaderValue) and prob.x0.shape == (S,) and prob.x0.abs().max() < 0.05
    # Nothing moves from a free cell into an obstacle, and every live row is a distribution.
    live = ~mdp.terminal
    assert not mdp.P[~cells["#"]][:, :, cells["#"]].any()
    torch.testing.assert_close(mdp.P[live].sum(dim=2), torch.ones(int(live.sum()), A, dtype=F64), rtol=0, atol=1e-14)
    # Rewards: the robot's task plus a bounded shaping; the designer's task, hazards and corridor.
    x = 5 * torch.randn(S, generator=torch.Generator().manual_seed(0), dtype=F64)
    task = torch.full((S, A), -0.3, dtype=F64)
    task[99] = 1.0
    torch.testing.assert_close(prob.reward(x), task + 0.15 * torch.tanh(x).unsqueeze(1), rtol=0, atol=0)
    designer = task - cells["H"].to(F64).unsqueeze(1) + 0.1 * cells["C"].to(F64).unsqueeze(1)
    torch.testing.assert_close(prob.designer_reward, designer, rtol=0, atol=0)


def row(prob, cell: tuple[int, int], action: int) -> dict[tuple[int, int], float]:
    side = prob.side
    P = prob.mdp.P[cell[0] * side + cell[1], action]
    return {(t // side, t % side): P[t].item() for t in P.nonzero().flatten().tolist()}


@pytest.mark.parametrize(
    ("cell", "action", "expected"),
    [
        # (2, 4) is above the obstacle block at rows 3-4, cols 4-5: moving down stays put
        ((2, 4), 2, {(2, 4): 0.9, (1, 4): 0.1 / 3, (2, 5): 0.1 / 3, (2, 3): 0.1 / 3}),
        # (3, 3) left of the block, moving right: blocked; the slips go up, down and left
        ((3, 3), 1, {(3, 3): 0.9, (2, 3): 0.1 / 3, (4, 3): 0.1 / 3, (3, 2): 0.1 / 3}),
        # the start corner, moving up: the off-grid up and left moves stay put
        ((0, 0), 0, {(0, 0): 0.9 + 0.1 / 3, (0, 1): 0.1 / 3, (1, 0): 0.1 / 3}),
    ],
)
def test_moves_into_obstacles_and_walls_stay_put(cell, action, expected):
    assert row(navigation(), cell, action) == pytest.approx(expected, abs=1e-15)


def test_exact_shaping_keeps_the_robot_out_of_the_hazards():
    """The documented instance: the unshaped robot walks through the hazards; 300 exact steps move it to the
    corridor (docs/results/applications)."""
    prob = navigation()
    before = behaviour(prob, prob.x0)
    assert before["hazard_visits"] > 2.0 and before["corridor_visits"] < 2.5  # measured 2.137 and 2.232
    result = solve(prob, prob.x0, method="exact", iterations=300)
    after = behaviour(prob, result.x)
    assert after["designer_value"] == pytest.approx(-hyperobjective(prob, result.x).item(), abs=1e-12)
    assert after["designer_value"] > before["designer_value"] + 3.0  # measured -5.977 -> -2.804
    assert after["hazard_visits"] < 0.05 and after["corridor_visits"] > 10.0  # measured 0.016 and 11.79
    assert after["goal"] >= before["goal"]  # it still reaches the goal (measured 0.277 -> 0.291)


def test_no_shaping_makes_a_loop_pay():
    """bound + tau log 4 < step_cost: outside the goal the robot's reward plus its largest entropy bonus is negative
    at every x, so no loop of states pays for itself (the designer cannot buy loitering)."""
    prob = navigation()
    outside = torch.arange(100) != prob.goal
    for scale in (1.0, 100.0):
        x = scale * torch.randn(100, generator=torch.Generator().manual_seed(2), dtype=F64).abs()
        assert prob.reward(x)[outside].max().item() + prob.mdp.tau * math.log(4) < 0


def test_hypergradient_matches_finite_differences_on_the_map():
    prob = navigation()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(100, generator=gen, dtype=F64)
    hazard = int(prob.cells["H"].nonzero()[0])
    directions = torch.cat(
        [torch.eye(100, dtype=F64)[[hazard, prob.start, 10]], torch.randn(3, 100, generator=gen, dtype=F64)]
    )
    g = hypergradient(prob, x)
    fd = central_difference(lambda z: hyperobjective(prob, x + z @ directions), torch.zeros(6, dtype=F64), 1e-4)
    assert ((directions @ g - fd).norm() / fd.norm()).item() <= 1e-6


@st.composite
def small_maps(draw) -> list[str]:
    side = draw(st.integers(2, 4))
    cells = draw(st.lists(st.sampled_from(".#HC"), min_size=side * side, max_size=side * side))
    start, goal = draw(st.lists(st.integers(0, side * side - 1), min_size=2, max_size=2, unique=True))
    cells[start], cells[goal] = "S", "G"
    return ["".join(cells[r * side : (r + 1) * side]) for r in range(side)]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    grid_map=small_maps(),
    slip=st.sampled_from([0.0, 0.1, 0.5]),
    gamma=st.sampled_from([0.5, 0.9, 0.99]),
    tau=st.sampled_from([0.05, 0.3, 1.0]),
    bound=st.sampled_from([0.15, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_hypergradient_matches_finite_differences(grid_map, slip, gamma, tau, bound, seed):
    prob = navigation(grid_map=grid_map, slip=slip, gamma=gamma, tau=tau, step_cost=0.5, bound=bound, seed=seed)
    x = torch.randn(prob.x0.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    g = hypergradient(prob, x)
    fd = central_difference(lambda z: hyperobjective(prob, z), x, 1e-4 * max(tau, 0.1))
    assert ((g - fd).norm() / g.norm().clamp(min=1e-3)).item() <= 1e-6


def test_compare_accepts_every_method():
    validate("navigation", {}, ["exact", "m-sobirl", "sobirl", "itd", "zero-order", "parl", "pbrl", "hpgd"], {})
    validate("navigation", {}, ["sobirl-mf", "stoc-sobirl"], {})
    pi = lower_level(navigation(), torch.zeros(100, dtype=F64)).pi
    assert pi[navigation().cells["#"]].sum(dim=1).allclose(torch.ones(8, dtype=F64))  # obstacle rows stay policies


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid_map": ("S.", "G")}, "map must be a square of at least 2 x 2 characters"),
        ({"grid_map": ("SX", ".G")}, r"map holds unknown characters \['X'\]; valid: #, H, C, S, G, \."),
        ({"grid_map": ("S.", "..")}, "map must hold exactly one 'G', got 0"),
        ({"step_cost": -0.1}, r"step_cost must be in \[0, inf\)"),
        ({"hazard": -1.0}, r"hazard must be in \[0, inf\)"),
        ({"bound": 0.0}, r"bound must be in \(0, inf\)"),
        ({"slip": 1.5}, r"slip must be in \[0, 1\]"),
    ],
)
def test_builder_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        navigation(**kwargs)


def test_map_parsing():
    cells = parse_map(MAP)
    assert set(cells) == set("#HCSG.") and all(mask.shape == (100,) for mask in cells.values())
    assert sum(mask.sum().item() for mask in cells.values()) == 100


def test_plot_solution_writes_a_png(tmp_path):
    from sobirl.problems.navigation import plot_solution

    prob = navigation()
    path = plot_solution(prob, prob.x0, tmp_path / "shaping.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
