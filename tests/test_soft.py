"""The soft Bellman solvers (docs/math.md, section 2): fixed point, agreement, stability, warm starts."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import F64, nonlinear_problem, random_transitions, to_sparse
from sobirl.tabular import (
    ConvergenceError,
    TabularMDP,
    hypergradient,
    soft_bellman,
    soft_policy_iteration,
    soft_value_iteration,
)


def _mdp(S=9, A=4, gamma=0.9, tau=0.5, seed=0, sparse=False):
    P = random_transitions(S, A, torch.Generator().manual_seed(seed))
    return TabularMDP(to_sparse(P) if sparse else P, gamma=gamma, tau=tau)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.99])
def test_solution_is_the_soft_bellman_fixed_point(sparse, gamma):
    mdp = _mdp(gamma=gamma, sparse=sparse)
    r = torch.randn(mdp.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    for solve in (soft_value_iteration, soft_policy_iteration):
        sol = solve(mdp, r, tol=1e-12)
        Q = r + gamma * mdp.expect(sol.V)
        torch.testing.assert_close(sol.Q, Q, rtol=0, atol=1e-9)
        torch.testing.assert_close(sol.V, mdp.tau * torch.logsumexp(Q / mdp.tau, dim=1), rtol=0, atol=1e-9)
        torch.testing.assert_close(sol.pi.sum(dim=1), torch.ones(mdp.n_states, dtype=F64))
        # pi = exp((Q - V) / tau), the softmax temporal consistency
        torch.testing.assert_close(sol.pi, torch.exp((sol.Q - sol.V[:, None]) / mdp.tau), rtol=1e-9, atol=1e-12)


def test_policy_iteration_takes_far_fewer_steps_at_large_gamma():
    mdp = _mdp(S=30, gamma=0.99, tau=0.1)
    r = torch.randn(mdp.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    vi = soft_value_iteration(mdp, r, tol=1e-12)
    pi = soft_policy_iteration(mdp, r, tol=1e-10)
    torch.testing.assert_close(vi.V, pi.V, rtol=1e-8, atol=0)
    assert pi.iterations <= 20 < vi.iterations


def test_warm_start_reduces_sweeps():
    mdp = _mdp(gamma=0.9)
    r = torch.randn(mdp.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    cold = soft_value_iteration(mdp, r, tol=1e-10)
    warm = soft_value_iteration(mdp, r + 1e-6, tol=1e-10, V0=cold.V)
    assert warm.iterations < cold.iterations / 2


def test_soft_bellman_steps_match_value_iteration():
    mdp = _mdp(gamma=0.5)
    r = torch.randn(mdp.shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    Q = soft_bellman(mdp, r, torch.zeros(mdp.shape, dtype=F64), steps=200)
    torch.testing.assert_close(Q, soft_value_iteration(mdp, r, tol=1e-14).Q, rtol=0, atol=1e-12)


def test_value_iteration_reports_non_convergence():
    mdp = _mdp(gamma=0.99)
    r = torch.randn(mdp.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    with pytest.raises(ConvergenceError, match="after 3 sweeps"):
        soft_value_iteration(mdp, r, tol=1e-10, max_iter=3)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("solver", ["value-iteration", "policy-iteration"])
def test_tiny_tau_and_large_rewards_stay_finite(sparse, solver):
    """tau = 1e-3 with rewards up to 1e3: Q/tau ~ 1e8, handled by the stable log-sum-exp."""
    gen = torch.Generator().manual_seed(6)
    P = random_transitions(8, 4, gen)
    prob = nonlinear_problem(to_sparse(P) if sparse else P, gamma=0.9, tau=1e-3, n=3, gen=gen, reward_scale=1e3)
    x = torch.randn(3, generator=gen, dtype=F64)
    r = prob.reward(x).detach()
    assert r.abs().max() > 500
    sol = (soft_value_iteration if solver == "value-iteration" else soft_policy_iteration)(prob.mdp, r, tol=1e-12)
    for t in (sol.V, sol.Q, sol.pi):
        assert torch.isfinite(t).all()
    g = hypergradient(prob, x, solver=solver)
    assert torch.isfinite(g).all()


def test_entropy_regularised_value_of_a_one_state_mdp():
    """One state, A actions, reward 0: V = tau log A / (1 - gamma) and pi uniform."""
    mdp = TabularMDP(torch.ones(1, 3, 1, dtype=F64), gamma=0.5, tau=2.0)
    sol = soft_policy_iteration(mdp, torch.zeros(1, 3, dtype=F64), tol=1e-14)
    assert sol.V.item() == pytest.approx(2.0 * math.log(3.0) / 0.5, rel=1e-13)
    torch.testing.assert_close(sol.pi, torch.full((1, 3), 1 / 3, dtype=F64))
