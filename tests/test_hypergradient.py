"""The exact hyper-gradient against central finite differences of the hyper-objective (docs/math.md, section 3)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import F64, central_difference, nonlinear_problem, random_transitions, to_sparse
from sobirl.tabular import hypergrad as hypergrad_module
from sobirl.tabular import hypergradient, hypergradient_info, hyperobjective

GAMMAS = [0.5, 0.9, 0.99]
TAUS = [0.01, 0.1, 1.0, 5.0]


def relative_fd_error(prob, x: torch.Tensor, h: float) -> float:
    g = hypergradient(prob, x)
    fd = central_difference(lambda z: hyperobjective(prob, z), x, h)
    return ((g - fd).norm() / g.norm()).item()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    S=st.integers(2, 7),
    A=st.integers(1, 4),
    n=st.integers(1, 4),
    gamma=st.sampled_from(GAMMAS),
    tau=st.sampled_from(TAUS),
    layout=st.sampled_from(["dense", "coo", "csr"]),
    seed=st.integers(0, 2**31 - 1),
)
# BiCGSTAB's search direction cancelled to exactly zero here (a division by zero before the breakdown restart)
@example(S=3, A=3, n=3, gamma=0.9, tau=0.01, layout="coo", seed=120)
def test_hypergradient_matches_finite_differences(S, A, n, gamma, tau, layout, seed):
    gen = torch.Generator().manual_seed(seed)
    P = random_transitions(S, A, gen)
    if layout != "dense":
        P = to_sparse(P, layout)
    prob = nonlinear_problem(P, gamma=gamma, tau=tau, n=n, gen=gen)
    x = torch.randn(n, generator=gen, dtype=F64)
    assert relative_fd_error(prob, x, h=1e-4 * max(tau, 0.1)) <= 1e-6


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("tau", TAUS)
def test_policy_term_matches_finite_differences(gamma, tau):
    """f depends on pi only and the reward varies on the scale of tau: the whole gradient is the policy term."""
    gen = torch.Generator().manual_seed(7)
    P = random_transitions(6, 3, gen)
    prob = nonlinear_problem(P, gamma=gamma, tau=tau, n=3, gen=gen, reward_scale=tau, upper_kind="policy")
    x = torch.randn(3, generator=gen, dtype=F64)
    assert hypergradient(prob, x).norm() > 1e-3
    assert relative_fd_error(prob, x, h=1e-4) <= 1e-6


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_and_dense_agree(layout):
    gen = torch.Generator().manual_seed(3)
    P = random_transitions(12, 4, gen, sparsity=0.8)
    x = torch.randn(5, generator=gen, dtype=F64)
    grads = []
    for P_ in (P, to_sparse(P, layout)):
        prob = nonlinear_problem(P_, gamma=0.99, tau=0.1, n=5, gen=torch.Generator().manual_seed(1))
        grads.append(hypergradient(prob, x))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=0)


def test_returns_float64_shaped_like_x():
    gen = torch.Generator().manual_seed(0)
    prob = nonlinear_problem(random_transitions(4, 2, gen), gamma=0.9, tau=1.0, n=3, gen=gen)
    x = torch.randn(3, generator=gen, dtype=torch.float32)
    g = hypergradient(prob, x)
    assert g.shape == x.shape and g.dtype == F64
    assert hyperobjective(prob, x).dim() == 0


def test_value_iteration_and_policy_iteration_give_the_same_gradient():
    gen = torch.Generator().manual_seed(4)
    prob = nonlinear_problem(random_transitions(8, 3, gen), gamma=0.9, tau=0.5, n=4, gen=gen)
    x = torch.randn(4, generator=gen, dtype=F64)
    g_vi = hypergradient(prob, x, solver="value-iteration", tol=1e-13)
    g_pi = hypergradient(prob, x, solver="policy-iteration")
    torch.testing.assert_close(g_vi, g_pi, rtol=1e-9, atol=0)


@pytest.mark.parametrize("layout", ["dense", "coo"])
def test_one_reward_call_one_vjp_one_linear_solve(monkeypatch, layout):
    """Cost: r_fn evaluated once, ONE backward pass through it, ONE adjoint linear solve."""
    gen = torch.Generator().manual_seed(5)
    P = random_transitions(30, 4, gen)
    if layout != "dense":
        P = to_sparse(P)
    prob = nonlinear_problem(P, gamma=0.9, tau=0.3, n=6, gen=gen)
    calls = {"reward": 0, "backward": 0, "solve": 0}
    reward_fn = prob.reward_fn

    def counting_reward(x):
        calls["reward"] += 1
        r = reward_fn(x)
        if r.requires_grad:
            r.register_hook(lambda grad: calls.__setitem__("backward", calls["backward"] + 1))
        return r

    solve_adjoint = hypergrad_module.solve_adjoint

    def counting_solve(*args, **kwargs):
        calls["solve"] += 1
        return solve_adjoint(*args, **kwargs)

    prob.reward_fn = counting_reward
    monkeypatch.setattr(hypergrad_module, "solve_adjoint", counting_solve)
    info = hypergradient_info(prob, torch.randn(6, generator=gen, dtype=F64))
    assert calls == {"reward": 1, "backward": 1, "solve": 1}
    assert info.grad.shape == (6,)


def test_reuses_a_given_solution():
    gen = torch.Generator().manual_seed(6)
    prob = nonlinear_problem(random_transitions(5, 3, gen), gamma=0.9, tau=1.0, n=2, gen=gen)
    x = torch.randn(2, generator=gen, dtype=F64)
    info = hypergradient_info(prob, x)
    torch.testing.assert_close(hypergradient(prob, x, solution=info.solution), info.grad, rtol=0, atol=0)
    assert info.objective.item() == pytest.approx(hyperobjective(prob, x).item(), abs=1e-12)


def test_reward_independent_of_x_gives_the_explicit_gradient():
    gen = torch.Generator().manual_seed(8)
    P = random_transitions(4, 2, gen)
    base = torch.randn(4, 2, generator=gen, dtype=F64)
    from sobirl.tabular import BilevelProblem, TabularMDP

    prob = BilevelProblem(TabularMDP(P, gamma=0.5, tau=1.0), reward=lambda x: base, upper=lambda x, pi: (x**2).sum())
    x = torch.tensor([1.0, -2.0], dtype=F64)
    torch.testing.assert_close(hypergradient(prob, x), 2 * x)
