"""Apprenticeship learning (inverse RL): the builders, the feature-matching form of the hyper-gradient (docs/math.md,
section 9) and the learned reward's true return on the 10 x 10 grid."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import F64, central_difference, random_transitions, to_sparse
from sobirl.algorithms import solve
from sobirl.experiments.compare import validate
from sobirl.problems import PROBLEMS, apprenticeship
from sobirl.problems.apprenticeship import (
    CELL_TYPES,
    THETA_TRUE,
    apprenticeship_problem,
    cell_types,
    feature_matching_gradient,
    true_return,
)
from sobirl.tabular import TabularMDP, hypergradient, hyperobjective, lower_level, soft_policy_iteration

# ---------------------------------------------------------------------------------------------- the builders


def test_registered_and_builds_the_grid_instance():
    assert PROBLEMS["apprenticeship"] is apprenticeship
    prob = apprenticeship()
    S, A = 100, 4
    assert prob.mdp.shape == (S, A) and not prob.mdp.is_sparse and prob.mdp.gamma == 0.9 and prob.mdp.tau == 0.2
    assert prob.x0.shape == (len(CELL_TYPES),) and not prob.x0.any() and prob.x0.dtype == F64
    assert prob.features.shape == (S, A, 4) and prob.frequencies.shape == (S, A)
    assert prob.frequencies.sum().item() == pytest.approx(1.0, abs=1e-14) and prob.frequencies.min() >= 0
    # Every state has exactly one type feature or none, the same for each action, and the reward is THETA_TRUE's.
    assert torch.equal(prob.features.sum(dim=2)[:, 0], (prob.cell_types >= 0).to(F64))
    assert torch.equal(prob.features, prob.features[:, :1].expand(S, A, 4))
    expected = torch.tensor([THETA_TRUE[t] if t >= 0 else 0.0 for t in prob.cell_types.tolist()], dtype=F64)
    torch.testing.assert_close(prob.true_reward, expected.unsqueeze(1).expand(S, A), rtol=0, atol=0)
    # The expert is soft-optimal for the true reward, and the linear reward at THETA_TRUE is the true reward.
    torch.testing.assert_close(prob.reward(torch.tensor(THETA_TRUE, dtype=F64)), prob.true_reward, rtol=0, atol=0)
    torch.testing.assert_close(
        prob.expert, soft_policy_iteration(prob.mdp, prob.true_reward, 1e-12).pi, rtol=0, atol=1e-12
    )
    assert prob.expert_return == pytest.approx(3.0160, abs=1e-4)  # positive: the ratio below is meaningful
    # f at x0 (uniform policy) is log 4 whatever the demonstrations.
    assert hyperobjective(prob, prob.x0).item() == pytest.approx(math.log(4), rel=1e-14)


def test_cell_types_layout():
    types = cell_types(10).view(10, 10)
    assert types[9, 9] == CELL_TYPES.index("goal") and types[0, 9] == CELL_TYPES.index("gem")
    assert (types[5, 1:8] == CELL_TYPES.index("hazard")).all() and types[5, 0] == -1 and types[5, 8] == -1
    assert (types[6:, :3] == CELL_TYPES.index("mud")).all()
    assert (types >= 0).sum().item() == 1 + 1 + 7 + 12


def test_demonstrations_follow_the_seed_and_count_every_step():
    a, b, c = apprenticeship(seed=3), apprenticeship(seed=3), apprenticeship(seed=4)
    assert torch.equal(a.frequencies, b.frequencies) and not torch.equal(a.frequencies, c.frequencies)
    small = apprenticeship(demonstrations=7, horizon=3, seed=1)
    counts = small.frequencies * 21  # 7 trajectories x 3 steps, no terminal state: 21 pairs of weight 1
    torch.testing.assert_close(counts, counts.round(), rtol=0, atol=1e-12)
    assert counts.sum().item() == pytest.approx(21, abs=1e-12)


def test_tabular_reward_is_the_table():
    prob = apprenticeship(reward="tabular", demonstrations=5)
    x = torch.randn(400, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert prob.x0.shape == (400,) and prob.features is None
    torch.testing.assert_close(prob.reward(x), x.view(100, 4), rtol=0, atol=0)


def test_problem_from_arrays_with_weights_is_the_weighted_log_likelihood():
    gen = torch.Generator().manual_seed(1)
    mdp = TabularMDP(random_transitions(4, 3, gen), gamma=0.8, tau=0.7)
    states, actions = torch.tensor([0, 0, 2, 3, 3]), torch.tensor([1, 1, 0, 2, 1])
    weights = torch.tensor([1.0, 2.0, 0.5, 0.0, 1.5], dtype=F64)
    features = torch.randn(4, 3, 2, generator=gen, dtype=F64)
    prob = apprenticeship_problem(mdp, states, actions, weights=weights, features=features, reg=0.3)
    x = torch.randn(2, generator=gen, dtype=F64)
    pi = torch.softmax(torch.randn(4, 3, generator=gen, dtype=F64), dim=1)
    expected = -(weights * pi[states, actions].log()).sum() / weights.sum() + 0.15 * (x * x).sum()
    assert prob.upper(x, pi).item() == pytest.approx(expected.item(), rel=1e-14)


# ---------------------------------------------------------------------------------------------- hyper-gradient


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    S=st.integers(2, 6),
    A=st.integers(2, 3),
    n=st.integers(1, 3),
    tabular=st.booleans(),
    gamma=st.sampled_from([0.5, 0.9, 0.99]),
    tau=st.sampled_from([0.1, 1.0, 5.0]),
    reg=st.sampled_from([0.0, 0.3]),
    layout=st.sampled_from(["dense", "coo"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_hypergradient_matches_finite_differences(S, A, n, tabular, gamma, tau, reg, layout, seed):
    gen = torch.Generator().manual_seed(seed)
    P = random_transitions(S, A, gen)
    mdp = TabularMDP(P if layout == "dense" else to_sparse(P), gamma=gamma, tau=tau)
    N = 2 * S
    states, actions = torch.randint(S, (N,), generator=gen), torch.randint(A, (N,), generator=gen)
    weights = torch.rand(N, generator=gen, dtype=F64) + 0.1
    features = None if tabular else torch.randn(S, A, n, generator=gen, dtype=F64)
    prob = apprenticeship_problem(mdp, states, actions, weights=weights, features=features, reg=reg)
    x = tau * torch.randn(prob.x0.shape, generator=gen, dtype=F64)  # rewards on the scale of tau
    g = hypergradient(prob, x)
    fd = central_difference(lambda z: hyperobjective(prob, z), x, 1e-4 * max(tau, 0.1))
    assert ((g - fd).norm() / g.norm().clamp(min=1e-3)).item() <= 1e-6


def dense_feature_matching(prob, x: torch.Tensor) -> torch.Tensor:
    """(1/tau) Phi^T (nu_x - D) + reg x with nu_x from a dense solve (docs/math.md, section 9), written out."""
    mdp, D = prob.mdp, prob.frequencies
    S, A = mdp.shape
    pi = lower_level(prob, x).pi
    mu = D.sum(dim=1) - mdp.gamma * torch.einsum("sa,sat->t", D, mdp.P)
    P_pi = torch.einsum("sa,sat->st", pi, mdp.P)
    n_x = torch.linalg.solve(torch.eye(S, dtype=F64) - mdp.gamma * P_pi.T, mu)
    Phi = torch.eye(S * A, dtype=F64).view(S, A, S * A) if prob.features is None else prob.features
    return torch.einsum("sa,san->n", pi * n_x.unsqueeze(1) - D, Phi) / mdp.tau + prob.reg * x


@pytest.mark.parametrize(("reward", "reg"), [("linear", 0.0), ("linear", 0.5), ("tabular", 0.0), ("tabular", 0.1)])
def test_feature_matching_relation_holds_to_1e_8(reward, reg):
    prob = apprenticeship(reward=reward, reg=reg)
    gen = torch.Generator().manual_seed(2)
    for x in (prob.x0, torch.randn(prob.x0.shape, generator=gen, dtype=F64)):
        g = hypergradient(prob, x)
        for other in (dense_feature_matching(prob, x), feature_matching_gradient(prob, x)):
            assert ((g - other).norm() / g.norm()).item() <= 1e-8  # measured ~1e-16


def test_maxent_irl_feature_matching_with_the_expert_occupancy():
    """D = the expert's normalised discounted occupancy: mu = (1 - gamma) rho, the gradient is the difference of
    the normalised feature expectations, and it vanishes at the expert's own weights."""
    grid = apprenticeship(demonstrations=1)
    mdp, expert = grid.mdp, grid.expert
    S, A = mdp.shape
    occupancy = torch.linalg.solve(torch.eye(S, dtype=F64) - mdp.gamma * mdp.policy_matrix(expert).T, mdp.rho)
    D = (1 - mdp.gamma) * expert * occupancy.unsqueeze(1)  # sums to 1
    pairs = torch.arange(S * A)
    prob = apprenticeship_problem(
        mdp, torch.div(pairs, A, rounding_mode="floor"), pairs % A, weights=D.reshape(-1), features=grid.features
    )
    mu = D.sum(dim=1) - mdp.gamma * mdp.pushforward(D)
    torch.testing.assert_close(mu, (1 - mdp.gamma) * mdp.rho, rtol=0, atol=1e-14)
    x = torch.randn(4, generator=torch.Generator().manual_seed(3), dtype=F64)
    pi = lower_level(prob, x).pi
    follower = torch.linalg.solve(torch.eye(S, dtype=F64) - mdp.gamma * mdp.policy_matrix(pi).T, mdp.rho)
    E_follower = torch.einsum("sa,san->n", (1 - mdp.gamma) * pi * follower.unsqueeze(1), grid.features)
    E_expert = torch.einsum("sa,san->n", D, grid.features)
    torch.testing.assert_close(hypergradient(prob, x), (E_follower - E_expert) / mdp.tau, rtol=1e-9, atol=1e-12)
    assert hypergradient(prob, torch.tensor(THETA_TRUE, dtype=F64)).abs().max().item() <= 1e-10


# ---------------------------------------------------------------------------------------------- the learned reward


@pytest.mark.parametrize(
    ("kwargs", "iterations"),
    [
        ({}, 100),  # 1000 expert trajectories of 20 steps (20,000 pairs), linear reward: measured 99.1%
        ({"horizon": 1}, 100),  # 1000 single demonstrated pairs: 99.6%
        ({"reward": "tabular"}, 200),  # a tabular reward (400 parameters): 98.0%
    ],
)
def test_learned_reward_reaches_95_percent_of_the_expert_return(kwargs, iterations):
    prob = apprenticeship(demonstrations=1000, **kwargs)
    result = solve(prob, prob.x0, method="exact", iterations=iterations)
    assert hyperobjective(prob, result.x) < hyperobjective(prob, prob.x0)
    assert true_return(prob, result.x) >= 0.95 * prob.expert_return
    assert true_return(prob, prob.x0) < 0  # the uniform policy falls in the hazards: the ratio is not free


def test_compare_accepts_the_tabular_methods_and_rejects_the_leader_value_ones():
    validate("apprenticeship", {}, ["exact", "m-sobirl", "sobirl", "itd", "zero-order", "parl", "pbrl"], {})
    for method in ("hpgd", "sobirl-mf"):
        with pytest.raises(ValueError, match="LeaderValue"):
            validate("apprenticeship", {}, [method], {})


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"reward": "neural"}, ValueError, "unknown reward 'neural'; valid: linear, tabular"),
        ({"side": 3}, ValueError, "side must be an integer >= 4"),
        ({"demonstrations": 0}, ValueError, "demonstrations must be an integer >= 1"),
        ({"horizon": 0}, ValueError, "horizon must be an integer >= 1"),
        ({"reg": -1.0}, ValueError, r"reg must be in \[0, inf\)"),
        ({"tau": 0.0}, ValueError, r"tau must be in \(0, inf\)"),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ],
)
def test_builder_validates(kwargs, error, match):
    with pytest.raises(error, match=match):
        apprenticeship(**kwargs)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"states": torch.tensor([0, 4])}, r"states must hold indices in \[0, 3\]"),
        ({"actions": torch.tensor([0.0, 1.0])}, "actions must be an integer torch.Tensor"),
        ({"actions": torch.tensor([0])}, "states and actions must have the same shape"),
        ({"weights": torch.tensor([1.0, -1.0])}, "weights must be non-negative with a positive sum"),
        ({"weights": torch.tensor([1.0])}, r"weights must be a tensor of shape \(N,\)"),
        ({"features": torch.zeros(4, 2)}, r"features must be a tensor of shape \(S, A, n\) = \(4, 2, n\)"),
        ({"x0": torch.zeros(3)}, r"x0 must be a tensor of shape \(n,\) = \(8,\)"),
    ],
)
def test_arrays_are_validated(change, match):
    mdp = TabularMDP(random_transitions(4, 2, torch.Generator().manual_seed(0)), gamma=0.9, tau=1.0)
    args = {"states": torch.tensor([0, 1]), "actions": torch.tensor([1, 0]), **change}
    with pytest.raises((ValueError, TypeError), match=match):
        apprenticeship_problem(mdp, args.pop("states"), args.pop("actions"), **args)


def test_plot_solution_writes_a_png(tmp_path):
    from sobirl.problems.apprenticeship import plot_solution

    prob = apprenticeship(demonstrations=20)
    path = plot_solution(prob, torch.tensor(THETA_TRUE, dtype=F64), tmp_path / "figure" / "reward.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
