"""The ITD and zero-order baselines (docs/math.md, section 6) against the exact hyper-gradient (section 3)."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from conftest import F64, nonlinear_problem, random_transitions, to_sparse
from sobirl.algorithms import ITD, ITDConfig, ZeroOrder, ZeroOrderConfig, solve
from sobirl.algorithms.itd import itd_gradient
from sobirl.algorithms.zero_order import zero_order_gradient
from sobirl.problems import random_mdp
from sobirl.tabular import hypergradient, hyperobjective, lower_level

S, A, N_X = 8, 3, 4


def _lazy_problem(gamma: float, layout: str, seed: int = 0):
    """A slowly mixing MDP (self-loop 0.9 in every (s, a)), so the unrolled derivative converges slowly in N."""
    gen = torch.Generator().manual_seed(seed)
    P = 0.9 * torch.eye(S, dtype=F64).unsqueeze(1) + 0.1 * random_transitions(S, A, gen, sparsity=0.8)
    P = P if layout == "dense" else to_sparse(P, layout)
    prob = nonlinear_problem(P, gamma=gamma, tau=0.5, n=N_X, gen=gen)
    return prob, torch.randn(N_X, generator=gen, dtype=F64)


def _relative_error(g: torch.Tensor, ref: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(g - ref) / torch.linalg.vector_norm(ref)).item()


# ------------------------------------------------------------------ configs


@pytest.mark.parametrize(
    ("config", "field", "value"),
    [
        (ITDConfig, "beta", 0.0),
        (ITDConfig, "beta", -1e-3),
        (ITDConfig, "unroll_steps", 0),
        (ZeroOrderConfig, "beta", 0.0),
        (ZeroOrderConfig, "delta", 0.0),
        (ZeroOrderConfig, "delta", -1e-4),
        (ZeroOrderConfig, "samples", 0),
        (ZeroOrderConfig, "seed", -1),
        (ZeroOrderConfig, "tol", 0.0),
    ],
)
def test_bad_config_names_the_field(config, field, value):
    with pytest.raises(ValueError, match=field):
        config(**{field: value})


def test_bad_values_fail_through_solve_and_the_gradient_functions():
    prob, x = _lazy_problem(0.5, "dense")
    with pytest.raises(ValueError, match="unroll_steps"):
        solve(prob, x, method="itd", iterations=1, unroll_steps=0)
    with pytest.raises(ValueError, match="samples"):
        solve(prob, x, method="zero-order", iterations=1, samples=0)
    with pytest.raises(TypeError, match="warm_start"):
        ITDConfig(warm_start="yes")
    with pytest.raises(ValueError, match="steps"):
        itd_gradient(prob, x, None, 0)
    with pytest.raises(ValueError, match="Q0"):
        itd_gradient(prob, x, torch.zeros(S, A + 1, dtype=F64), 1)
    with pytest.raises(ValueError, match="delta"):
        zero_order_gradient(prob, x, samples=1, delta=0.0, generator=torch.Generator())


# ------------------------------------------------------------------ ITD


@pytest.mark.parametrize("layout", ["dense", "coo", "csr"])
@pytest.mark.parametrize(("gamma", "steps"), [(0.5, 60), (0.9, 200)])
def test_itd_from_converged_q_matches_hypergradient(gamma, steps, layout):
    """From ``Q*`` the unrolled derivative reaches ``hypergradient()``; on this slowly mixing MDP the relative
    error first drops below 1e-5 at N = 11 (gamma 0.5) and N = 47 (gamma 0.9), for every layout; with N = 60
    and 200 it is measured at 5e-17 to 1e-13 (rounding). Fast-mixing random MDPs need only N ~ 10 and ~ 25."""
    prob, x = _lazy_problem(gamma, layout)
    Q_star = lower_level(prob, x, tol=1e-13).Q
    grad, objective, Q_N = itd_gradient(prob, x, Q_star, steps)
    assert _relative_error(grad, hypergradient(prob, x)) <= 1e-5
    assert objective.item() == pytest.approx(hyperobjective(prob, x).item(), abs=1e-12)
    torch.testing.assert_close(Q_N, Q_star, rtol=0, atol=1e-10)  # Q* is a fixed point of the unrolled steps


def test_itd_error_decreases_with_unroll_steps():
    """Relative error against ``hypergradient()`` at gamma = 0.9 on the slowly mixing MDP, measured:

    from Q*:    N = 1: 1.0e-1, 10: 1.2e-2, 25: 5.8e-4, 50: 5.4e-6, 100: 1.8e-10
    from zeros: N = 1: 8.8e-2, 10: 1.9e-2, 25: 1.8e-3, 50: 1.2e-5, 100: 5.4e-10 (the error of Q_N adds to it)
    """
    prob, x = _lazy_problem(0.9, "dense")
    hg = hypergradient(prob, x)
    Q_star = lower_level(prob, x, tol=1e-13).Q
    steps = (1, 10, 25, 50, 100)
    warm = [_relative_error(itd_gradient(prob, x, Q_star, n)[0], hg) for n in steps]
    cold = [_relative_error(itd_gradient(prob, x, None, n)[0], hg) for n in steps]
    for errors in (warm, cold):
        assert all(later < 0.5 * earlier for earlier, later in pairwise(errors)), errors
    assert warm[-1] <= 1e-8, warm
    assert cold[-1] <= 1e-6, cold


def test_itd_method_steps_along_itd_gradient_with_warm_start():
    prob, x0 = _lazy_problem(0.9, "dense")
    cfg = {"beta": 0.1, "unroll_steps": 7}
    for warm_start in (True, False):
        res = solve(prob, x0, method="itd", iterations=2, warm_start=warm_start, **cfg)
        g0, f0, Q1 = itd_gradient(prob, x0, None, 7)
        x1 = x0 - 0.1 * g0
        g1, f1, _ = itd_gradient(prob, x1, Q1 if warm_start else None, 7)
        torch.testing.assert_close(res.x, x1 - 0.1 * g1, rtol=1e-12, atol=1e-14)
        assert res.history["objective"] == pytest.approx([f0.item(), f1.item()], abs=1e-14)
        assert res.history["unroll_steps"] == [7.0, 7.0]


def test_itd_one_reward_evaluation_per_iteration():
    prob, x0 = _lazy_problem(0.5, "dense")
    calls = []
    reward_fn = prob.reward_fn
    prob.reward_fn = lambda x: calls.append(1) or reward_fn(x)
    algo = ITD(prob, x0, ITDConfig(unroll_steps=5))
    for _ in range(3):
        algo.step()
    assert len(calls) == 3


# ------------------------------------------------------------------ zero-order


def _small_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    prob = nonlinear_problem(random_transitions(5, 3, gen), gamma=0.9, tau=0.5, n=N_X, gen=gen)
    return prob, torch.randn(N_X, generator=gen, dtype=F64)


def test_zero_order_quotients_are_directional_derivatives():
    """With the same directions U, the estimate is ``U^T U grad phi / m`` up to O(delta^2) and the solver's
    ``tol / delta``; measured relative error 1.2e-8 (2e-7 at most over problem seeds 0-2)."""
    prob, x = _small_problem()
    m = 50
    grad, objective, solves = zero_order_gradient(
        prob, x, samples=m, delta=1e-4, generator=torch.Generator().manual_seed(7), tol=1e-10
    )
    U = torch.randn(m, N_X, generator=torch.Generator().manual_seed(7), dtype=F64)
    expected = U.T @ (U @ hypergradient(prob, x)) / m
    assert _relative_error(grad, expected) <= 1e-5
    assert objective.item() == pytest.approx(hyperobjective(prob, x).item(), abs=1e-10)
    assert solves == 2 * m + 1


def test_zero_order_is_unbiased():
    """The mean of 20 seeded estimates of 100 directions (2000 in all, 4000 solves) points along grad phi:
    measured cosine similarity 0.9994 (0.9995 and 0.9998 on problem seeds 1 and 2) and relative error 3.0% to 4.0%,
    the size sqrt((n + 1) / 2000) = 5% the variance of the estimator predicts."""
    prob, x = _small_problem()
    solution = lower_level(prob, x, tol=1e-10)
    estimates = [
        zero_order_gradient(
            prob, x, samples=100, delta=1e-4, generator=torch.Generator().manual_seed(seed), solution=solution
        )[0]
        for seed in range(20)
    ]
    mean = torch.stack(estimates).mean(dim=0)
    hg = hypergradient(prob, x)
    assert torch.nn.functional.cosine_similarity(mean, hg, dim=0).item() >= 0.99
    assert _relative_error(mean, hg) <= 0.15


def test_zero_order_is_deterministic_per_seed():
    prob, x0 = _small_problem(1)
    runs = [solve(prob, x0, method="zero-order", iterations=3, beta=0.05, samples=4, seed=s) for s in (3, 3, 4)]
    assert torch.equal(runs[0].x, runs[1].x)
    assert runs[0].history["grad_norm"] == runs[1].history["grad_norm"]
    assert not torch.equal(runs[0].x, runs[2].x)
    assert runs[0].history["oracle_calls"] == [9.0, 18.0, 27.0]  # 2m + 1 solves per iteration
    # phi at the method's tol = 1e-10 against the oracle's 1e-12: measured 1.5e-10 apart (phi ~ 5.76).
    assert runs[0].history["objective"][0] == pytest.approx(hyperobjective(prob, x0).item(), abs=1e-9)


def test_zero_order_method_owns_its_generator():
    prob, x0 = _small_problem(2)
    algo = ZeroOrder(prob, x0, ZeroOrderConfig(beta=0.05, samples=3, seed=5))
    algo.step()
    gen = torch.Generator().manual_seed(5)
    grad, _, _ = zero_order_gradient(prob, x0, samples=3, delta=1e-4, generator=gen)
    torch.testing.assert_close(algo.x, x0 - 0.05 * grad, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ solve decreases phi


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("itd", {"unroll_steps": 10}),
        ("itd", {"unroll_steps": 10, "warm_start": False}),
        ("zero-order", {"samples": 5}),
    ],
)
def test_solve_decreases_phi(method, params):
    """RandMDP with S=5, A=3, n=4: phi(x0) = 1.8196 and the global minimum S/(2A) = 0.8333 at x = 0; 40 steps
    of size 0.2 reach it to ~1e-7 with every variant (measured)."""
    prob = random_mdp(S=5, A=3, n=4, seed=0)
    res = solve(prob, prob.x0, method=method, iterations=40, beta=0.2, **params)
    phi0, phi = hyperobjective(prob, prob.x0).item(), hyperobjective(prob, res.x).item()
    assert phi0 == pytest.approx(1.8196, abs=1e-4)
    assert phi <= 5 / 6 + 1e-5
    assert phi0 - phi >= 0.9
