"""Problem builders: four rooms (HPGD), grid reward shaping and tabular RLHF match their definitions."""

from __future__ import annotations

import itertools
import math
import time

import pytest
import torch

from conftest import F64, central_difference
from sobirl.algorithms import solve
from sobirl.problems import four_rooms, gridworld_shaping, tabular_rlhf
from sobirl.problems.four_rooms import MAP
from sobirl.problems.tabular_rlhf import all_fragments, fragment_probabilities
from sobirl.tabular import TabularMDP, hypergradient, hyperobjective, lower_level, soft_policy_iteration

# ---------------------------------------------------------------------------------------------- four rooms

INTENDED, OTHER = 1 - 4 / 3 * 0.33, 4 / 3 * 0.33 / 3  # 0.56 and 0.14667 at the default fail_prob


def naive_four_rooms(fail_prob: float) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """The definition, cell by cell: the free cells in row-major order and the dense (104, 4, 104) P."""
    cells = [(r, c) for r, line in enumerate(MAP) for c, ch in enumerate(line) if ch == " "]
    index = {cell: i for i, cell in enumerate(cells)}
    moves = [(-1, 0), (0, 1), (1, 0), (0, -1)]
    P = torch.zeros(len(cells), 4, len(cells), dtype=F64)
    for i, (r, c) in enumerate(cells):
        for a in range(4):
            for m, (dr, dc) in enumerate(moves):
                j = index.get((r + dr, c + dc), i)
                P[i, a, j] += 1 - 4 / 3 * fail_prob if m == a else 4 / 3 * fail_prob / 3
    return cells, P


def transition_row(prob, cell: tuple[int, int], action: int) -> dict[tuple[int, int], float]:
    """P(.|cell, action) of context 0 as {(row, col): probability} over its non-zero entries."""
    coords = [tuple(rc) for rc in prob.coords.tolist()]
    row = prob.contexts[0].mdp.P[coords.index(cell), action]
    return {coords[j]: row[j].item() for j in row.nonzero().flatten().tolist()}


def reference_F(x: torch.Tensor, *, lam: float, c: float, fail_prob: float, gamma: float) -> float:
    """HPGD's leader objective recomputed from the naive P: soft policy iteration, then a dense linear solve."""
    cells, P = naive_four_rooms(fail_prob)
    start, target = cells.index((4, 1)), cells.index((8, 4))
    incentive = -0.2 * torch.softmax(x, dim=0)[:104]
    F = 0.0
    for goal in (cells.index((1, 9)), cells.index((11, 11))):
        is_goal = torch.zeros(104, dtype=torch.bool)
        is_goal[goal] = True
        r = torch.where(is_goal, 1.0, incentive).unsqueeze(1).expand(104, 4).clone()
        pi = soft_policy_iteration(TabularMDP(P, gamma=gamma, tau=lam, terminal=is_goal), r, tol=1e-13).pi
        P_pi = torch.einsum("sa,sat->st", pi, P)
        P_pi[goal] = 0.0  # terminal: nothing follows
        r_leader = -c * is_goal.to(F64) * incentive.abs().sum()
        r_leader[target] += 1.0
        V = torch.linalg.solve(torch.eye(104, dtype=F64) - gamma * P_pi, r_leader)
        F += 0.5 * V[start].item()
    return F


def test_four_rooms_states_and_transitions_match_the_map():
    prob = four_rooms()
    cells, P = naive_four_rooms(0.33)
    assert len(cells) == 104 and prob.coords.shape == (104, 2) and prob.coords.dtype == torch.long
    assert [tuple(rc) for rc in prob.coords.tolist()] == cells
    assert tuple(prob.coords[0].tolist()) == (1, 1)
    assert all(MAP[r][c] == " " for r, c in cells)
    assert [tuple(prob.coords[s].tolist()) for s in (prob.start, prob.target, *prob.goals)] == [
        (4, 1),
        (8, 4),
        (1, 9),
        (11, 11),
    ]
    assert prob.x0.shape == (105,) and not prob.x0.any() and prob.name == "four-rooms"
    for k, goal in enumerate(prob.goals):
        mdp = prob.contexts[k].mdp
        torch.testing.assert_close(mdp.P[torch.arange(104) != goal], P[torch.arange(104) != goal], rtol=0, atol=1e-15)


@pytest.mark.parametrize("action", range(4))
def test_four_rooms_interior_cell_under_each_action(action):
    neighbours = [(1, 2), (2, 3), (3, 2), (2, 1)]  # up, right, down, left of (2, 2)
    row = transition_row(four_rooms(fail_prob=0.6), (2, 2), action)
    expected = {cell: 1 - 0.8 if m == action else 0.8 / 3 for m, cell in enumerate(neighbours)}
    assert row == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("cell", "action", "expected"),
    [
        # interior cell, up: every move lands on a distinct free neighbour
        ((2, 2), 0, {(1, 2): INTENDED, (2, 3): OTHER, (3, 2): OTHER, (2, 1): OTHER}),
        # top-left corner, right: the blocked up and left moves stay put
        ((1, 1), 1, {(1, 1): 2 * OTHER, (1, 2): INTENDED, (2, 1): OTHER}),
        # top-left corner, up: the intended move is blocked, so its mass stays put too
        ((1, 1), 0, {(1, 1): INTENDED + OTHER, (1, 2): OTHER, (2, 1): OTHER}),
        # left corridor, down: walls left and right
        ((6, 2), 2, {(5, 2): OTHER, (6, 2): 2 * OTHER, (7, 2): INTENDED}),
        # top corridor, left: walls above and below
        ((3, 6), 3, {(3, 5): INTENDED, (3, 6): 2 * OTHER, (3, 7): OTHER}),
    ],
)
def test_four_rooms_rows_by_hand(cell, action, expected):
    row = transition_row(four_rooms(), cell, action)
    assert row.keys() == expected.keys()
    for successor, p in expected.items():
        assert row[successor] == pytest.approx(p, abs=1e-15)
    assert sum(row.values()) == pytest.approx(1.0, abs=1e-15)


def test_four_rooms_goals_are_terminal():
    prob = four_rooms()
    joint_goals = [prob.goals[0], 104 + prob.goals[1]]
    assert prob.mdp.terminal.nonzero().flatten().tolist() == joint_goals
    for k, goal in enumerate(prob.goals):
        mdp = prob.contexts[k].mdp
        assert mdp.terminal.nonzero().flatten().tolist() == [goal]
        assert not mdp.P[goal].any()  # nothing follows the goal
    # Q(goal, a) = r(goal, a) = 1 for the follower, whatever x.
    Q = lower_level(prob, torch.randn(105, generator=torch.Generator().manual_seed(0), dtype=F64)).Q
    torch.testing.assert_close(Q[joint_goals], torch.ones(2, 4, dtype=F64), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "params",
    [{}, {"lam": 0.05, "c": 3.0, "fail_prob": 0.6, "gamma": 0.9}],
)
def test_four_rooms_objective_is_minus_F(params):
    prob = four_rooms(**params)
    settings = {"lam": 0.003, "c": 1.0, "fail_prob": 0.33, "gamma": 0.99, **params}
    x = 2.0 * torch.randn(105, generator=torch.Generator().manual_seed(1), dtype=F64)
    for point in (prob.x0, x):
        assert hyperobjective(prob, point).item() == pytest.approx(-reference_F(point, **settings), abs=1e-10)
    if not params:  # HPGD's setting, uniform incentives: the follower barely passes the target cell
        assert hyperobjective(prob, prob.x0).item() == pytest.approx(-0.2000063165, abs=1e-9)


def test_four_rooms_hypergradient_matches_finite_differences():
    prob = four_rooms()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(105, generator=gen, dtype=F64)
    # Directional derivatives along the target, start and unused-slot coordinates and three random directions.
    directions = torch.cat(
        [torch.eye(105, dtype=F64)[[prob.target, prob.start, 104]], torch.randn(3, 105, generator=gen, dtype=F64)]
    )
    g = hypergradient(prob, x)
    fd = central_difference(lambda z: hyperobjective(prob, x + z @ directions), torch.zeros(6, dtype=F64), 1e-3)
    assert ((directions @ g - fd).norm() / fd.norm()).item() <= 1e-6  # measured ~1e-9
    assert g[104].item() == pytest.approx(-g[:104].sum().item(), abs=1e-12)  # softmax: gradient sums to 0


def test_four_rooms_exact_method_increases_F():
    prob = four_rooms()
    result = solve(prob, prob.x0, method="exact", iterations=10, beta=30.0)
    F = [-f for f in result.history["objective"]]
    F_final = -hyperobjective(prob, result.x).item()
    assert F[0] == pytest.approx(0.2000063, abs=1e-6)
    assert F_final > 0.43  # measured 0.4421: the follower is steered through the target cell
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(F))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lam": 0.0}, r"lam must be in \(0, inf\)"),
        ({"c": -1.0}, r"c must be in \[0, inf\)"),
        ({"fail_prob": 0.8}, r"fail_prob must be in \[0, 0.75\]"),
        ({"gamma": 1.0}, r"gamma must be in \[0, 1\)"),
    ],
)
def test_four_rooms_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        four_rooms(**kwargs)


# ---------------------------------------------------------------------------------------------- grid shaping


def test_gridworld_shaping_shapes_rewards_and_objective():
    N, cost = 5, 0.02
    prob = gridworld_shaping(N, cost=cost, seed=4)
    S, mdp = N * N, prob.mdp
    assert mdp.is_sparse and mdp.shape == (S, 4) and mdp.nnz <= 5 * S * 4
    assert mdp.terminal.nonzero().flatten().tolist() == [S - 1] and mdp.rho[0].item() == 1.0
    assert prob.x0.shape == (S,) and torch.equal(prob.x0, gridworld_shaping(N, cost=cost, seed=4).x0)
    x = torch.randn(S, generator=torch.Generator().manual_seed(5), dtype=F64)
    task = torch.full((S, 4), -0.1, dtype=F64)
    task[S - 1] = 1.0
    torch.testing.assert_close(prob.reward(x), task + x.unsqueeze(1), rtol=0, atol=0)
    # f = -(task value from the start, no entropy) + 0.5 cost |x|^2, against a dense solve.
    pi = torch.softmax(torch.randn(S, 4, generator=torch.Generator().manual_seed(6), dtype=F64), dim=1)
    P_pi = torch.einsum("sa,sat->st", pi, mdp.P.to_dense().view(S, 4, S))
    V = torch.linalg.solve(torch.eye(S, dtype=F64) - 0.99 * P_pi, (pi * task).sum(dim=1))
    assert prob.upper(x, pi).item() == pytest.approx(-V[0].item() + 0.5 * cost * (x * x).sum().item(), abs=1e-12)


def test_gridworld_shaping_hypergradient_matches_finite_differences():
    prob = gridworld_shaping(4)
    x = 0.1 * torch.randn(16, generator=torch.Generator().manual_seed(7), dtype=F64)
    g = hypergradient(prob, x)
    fd = central_difference(lambda z: hyperobjective(prob, z), x, 1e-4)
    assert ((g - fd).norm() / fd.norm()).item() <= 1e-6


def test_gridworld_shaping_builds_10k_states_quickly():
    start = time.perf_counter()
    prob = gridworld_shaping(100)
    elapsed = time.perf_counter() - start
    assert prob.mdp.shape == (10_000, 4) and prob.mdp.nnz <= 16 * 10_000
    assert elapsed < 3.0  # measured 0.1 s


def test_gridworld_shaping_builds_100k_states_in_seconds():
    start = time.perf_counter()
    prob = gridworld_shaping(316)
    elapsed = time.perf_counter() - start
    assert prob.mdp.shape == (99_856, 4) and prob.mdp.nnz <= 16 * 99_856
    assert elapsed < 10.0  # measured 1.1 s on one shared core


def test_gridworld_shaping_exact_method_improves_f():
    prob = gridworld_shaping(8)
    result = solve(prob, prob.x0, method="exact", iterations=5, beta=1.0)
    f0, f_final = result.history["objective"][0], hyperobjective(prob, result.x).item()
    assert f0 == pytest.approx(0.93335, abs=1e-4)  # the unshaped follower drifts to the goal slowly
    assert f_final < 0.7  # measured 0.6389


def test_gridworld_shaping_validates():
    with pytest.raises(ValueError, match="N must be an integer >= 2"):
        gridworld_shaping(1)
    with pytest.raises(ValueError, match=r"cost must be in \[0, inf\)"):
        gridworld_shaping(3, cost=-1.0)
    with pytest.raises(ValueError, match="slip"):
        gridworld_shaping(3, slip=2.0)


# ---------------------------------------------------------------------------------------------- tabular RLHF


@pytest.mark.parametrize(("S", "A", "H"), [(3, 2, 3), (2, 3, 1), (4, 1, 2)])
def test_rlhf_fragment_probabilities_sum_to_one(S, A, H):
    prob = tabular_rlhf(S, A, H, seed=3)
    states, actions = all_fragments(S, A, H)
    assert states.shape == actions.shape == ((S * A) ** H, H)
    assert len(set(map(tuple, torch.stack([states, actions], dim=2).view(-1, 2 * H).tolist()))) == (S * A) ** H
    pi = torch.softmax(torch.randn(S, A, generator=torch.Generator().manual_seed(8), dtype=F64), dim=1)
    p = fragment_probabilities(prob.mdp, pi, states, actions)
    assert p.min().item() > 0 and p.sum().item() == pytest.approx(1.0, abs=1e-14)


def brute_force_loss(prob, x: torch.Tensor, pi: torch.Tensor, temperature: float) -> float:
    """The expected Bradley-Terry loss by plain enumeration of fragment pairs and labels."""
    S, A = prob.mdp.shape
    P, rho, r_x, r_true = prob.mdp.P.tolist(), prob.mdp.rho.tolist(), x.view(S, A).tolist(), prob.r_true.tolist()
    pi_ = pi.tolist()
    fragments = list(itertools.product(itertools.product(range(S), range(A)), repeat=2))

    def probability(d):
        (s0, a0), (s1, a1) = d
        return rho[s0] * pi_[s0][a0] * P[s0][a0][s1] * pi_[s1][a1]

    def sigmoid(z):
        return 1 / (1 + math.exp(-z))

    total = 0.0
    for d1, d2 in itertools.product(fragments, repeat=2):
        D = sum(r_x[s][a] for s, a in d1) - sum(r_x[s][a] for s, a in d2)
        q = sigmoid((sum(r_true[s][a] for s, a in d1) - sum(r_true[s][a] for s, a in d2)) / temperature)
        loss = -q * math.log(sigmoid(D)) - (1 - q) * math.log(sigmoid(-D))
        total += probability(d1) * probability(d2) * loss
    return total


def test_rlhf_loss_matches_brute_force():
    prob = tabular_rlhf(2, 2, 2, seed=5, label_temperature=0.7)
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(4, generator=gen, dtype=F64)
    pi = torch.softmax(torch.randn(2, 2, generator=gen, dtype=F64), dim=1)
    assert prob.upper(x, pi).item() == pytest.approx(brute_force_loss(prob, x, pi, 0.7), rel=1e-12)
    # At x = 0 every return ties: the loss is log 2 whatever the labels.
    assert prob.upper(prob.x0, pi).item() == pytest.approx(math.log(2), rel=1e-14)


@pytest.mark.parametrize("gamma", [0.0, 0.9])
def test_rlhf_hypergradient_matches_finite_differences(gamma):
    prob = tabular_rlhf(gamma=gamma, tau=0.5, seed=1)
    x = torch.randn(6, generator=torch.Generator().manual_seed(10), dtype=F64)
    g = hypergradient(prob, x)
    fd = central_difference(lambda z: hyperobjective(prob, z), x, 1e-4)
    assert ((g - fd).norm() / fd.norm()).item() <= 1e-6


def test_rlhf_exact_method_decreases_f():
    prob = tabular_rlhf()
    result = solve(prob, prob.x0, method="exact", iterations=20, beta=1.0)
    f = result.history["objective"]
    assert f[0] == pytest.approx(math.log(2), rel=1e-14)
    assert hyperobjective(prob, result.x).item() < 0.625  # measured 0.62216 (0.62202 at convergence)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(f))


def test_rlhf_validates():
    long = tabular_rlhf(5, 4, 3)  # 8000 fragments: only the sampled objective
    assert not long.exact_upper and tabular_rlhf().exact_upper
    with pytest.raises(ValueError, match=r"\(S\*A\)\^H = 8000 fragments, more than the 4096"):
        hyperobjective(long, long.x0)
    with pytest.raises(ValueError, match="state_reward must be in"):
        tabular_rlhf(state_reward=-1.0)
    with pytest.raises(ValueError, match=r"label_temperature must be in \(0, inf\)"):
        tabular_rlhf(label_temperature=0.0)
    with pytest.raises(ValueError, match="H must be an integer >= 1"):
        tabular_rlhf(H=0)
