"""PARL (docs/math.md, section 6): implicit differentiation in the follower's logits, against the exact oracle."""

from __future__ import annotations

import itertools

import pytest
import torch

from conftest import F64, nonlinear_problem, random_transitions, to_sparse
from sobirl.algorithms import PARL, PARLConfig, solve
from sobirl.algorithms.parl import conjugate_gradient, parl_gradient
from sobirl.tabular import BilevelProblem, hypergradient, hyperobjective, lower_level


def _problem(seed: int, *, gamma: float = 0.9, tau: float = 1.0, S: int = 6, A: int = 3, n: int = 4, **kw):
    gen = torch.Generator().manual_seed(seed)
    prob = nonlinear_problem(random_transitions(S, A, gen), gamma=gamma, tau=tau, n=n, gen=gen, **kw)
    return prob, torch.randn(n, generator=gen, dtype=F64)


def _exact_logits(prob: BilevelProblem, x: torch.Tensor) -> torch.Tensor:
    return lower_level(prob, x).Q / prob.mdp.tau


def _relative_error(estimate: torch.Tensor, exact: torch.Tensor) -> float:
    return ((estimate - exact).norm() / exact.norm()).item()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("tau", [0.2, 1.0, 5.0])
@pytest.mark.parametrize("upper_kind", ["mixed", "policy"])
def test_exact_lower_level_and_vanishing_damping_give_the_hypergradient(gamma, tau, upper_kind):
    """theta = Q*/tau, mu = 1e-10, CG to 1e-13: relative error <= 1e-5 (measured <= 1.4e-8)."""
    prob, x = _problem(int(100 * gamma + 10 * tau), gamma=gamma, tau=tau, upper_kind=upper_kind)
    grad, objective, _ = parl_gradient(prob, x, _exact_logits(prob, x), damping=1e-10, tol=1e-13, iterations=300)
    assert _relative_error(grad, hypergradient(prob, x)) <= 1e-5
    assert objective.item() == pytest.approx(hyperobjective(prob, x).item(), rel=1e-12, abs=1e-12)


def test_error_is_linear_in_the_damping():
    """Along range(H) the damped inverse is H^+ + O(mu): each 100x smaller mu gives a ~100x smaller error."""
    prob, x = _problem(0, gamma=0.9, tau=1.0)
    theta, exact = _exact_logits(prob, x), hypergradient(prob, x)
    errors = [
        _relative_error(parl_gradient(prob, x, theta, damping=mu, tol=1e-13, iterations=300)[0], exact)
        for mu in (1e-2, 1e-4, 1e-6, 1e-8)
    ]
    assert errors[0] > 1e-3  # the damping is visible ...
    for coarse, fine in itertools.pairwise(errors):
        assert 0.005 * coarse <= fine <= 0.02 * coarse  # ... and its bias is O(mu)
    assert errors[-1] <= 1e-7  # measured 1.7e-2, 1.8e-4, 1.8e-6, 1.8e-8


def test_neumann_series_agrees_with_cg():
    """H's spectrum off the shifts is in [0.4, 0.9] here, so eta = 1 contracts by 0.6 per term."""
    prob, x = _problem(1, gamma=0.5, tau=5.0)
    theta, exact = _exact_logits(prob, x), hypergradient(prob, x)
    grad, _, hvp = parl_gradient(prob, x, theta, damping=1e-10, solver="neumann", iterations=80, eta=1.0)
    assert _relative_error(grad, exact) <= 1e-8
    assert hvp == 81


def test_conjugate_gradient_solves_and_stops_at_negative_curvature():
    gen = torch.Generator().manual_seed(6)
    B = torch.randn(8, 8, generator=gen, dtype=F64)
    M, b = B @ B.T + 0.1 * torch.eye(8, dtype=F64), torch.randn(8, generator=gen, dtype=F64)
    v, products = conjugate_gradient(lambda u: M @ u, b, iterations=100, tol=1e-12)
    torch.testing.assert_close(v, torch.linalg.solve(M, b), rtol=1e-9, atol=0)
    assert products <= 8 + 2  # n steps in exact arithmetic, a couple more for rounding
    indefinite = torch.diag(torch.tensor([1.0, -2.0], dtype=F64))
    v, products = conjugate_gradient(lambda u: indefinite @ u, torch.ones(2, dtype=F64), iterations=100, tol=1e-12)
    assert products == 1 and not v.any()  # curvature 1 - 2 < 0 along the first direction: keep v = 0


class _SecondOrderCounter:
    """Counts autograd calls that differentiate a non-scalar output: the Hessian-vector and mixed products."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._grad = torch.autograd.grad
        monkeypatch.setattr(torch.autograd, "grad", self)

    def __call__(self, outputs, *args, **kwargs):
        self.calls += int(outputs.dim() > 0)
        return self._grad(outputs, *args, **kwargs)


@pytest.mark.parametrize(
    ("solver", "iterations", "tol", "expected"),
    [("cg", 300, 1e-13, None), ("cg", 4, 1e-13, 5), ("neumann", 7, 1e-13, 8)],
)
def test_hvp_count_is_what_was_computed(monkeypatch, solver, iterations, tol, expected):
    prob, x = _problem(2)
    theta = _exact_logits(prob, x)
    counter = _SecondOrderCounter(monkeypatch)
    _, _, hvp = parl_gradient(prob, x, theta, damping=1e-8, solver=solver, iterations=iterations, tol=tol, eta=0.5)
    assert hvp == counter.calls
    if expected is None:  # CG converged: at most S(A-1) = 12 distinct non-zero eigenvalues, plus the mixed product
        assert 2 <= hvp <= 13
    else:
        assert hvp == expected


def test_upper_level_blind_to_the_policy_needs_no_second_order_products(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    P = random_transitions(5, 2, gen)
    base = nonlinear_problem(P, gamma=0.9, tau=1.0, n=3, gen=gen)
    prob = BilevelProblem(base.mdp, reward=base.reward_fn, upper=lambda x, pi: (x**3).sum())
    x = torch.randn(3, generator=gen, dtype=F64)
    counter = _SecondOrderCounter(monkeypatch)
    grad, _, hvp = parl_gradient(prob, x, _exact_logits(prob, x))
    assert hvp == counter.calls == 0
    torch.testing.assert_close(grad, 3 * x**2, rtol=1e-14, atol=0)


def test_solve_first_step_is_the_hypergradient_step_and_phi_decreases():
    prob, x0 = _problem(3)
    first = solve(prob, x0, method="parl", iterations=1, beta=0.1)
    step = (x0 - first.x) / 0.1
    assert _relative_error(step, hypergradient(prob, x0)) <= 1e-5  # measured 3.3e-6 with the default mu = 1e-6

    res = solve(prob, x0, method="parl", iterations=25, beta=0.2)
    phi0, phi = hyperobjective(prob, x0).item(), hyperobjective(prob, res.x).item()
    assert phi <= phi0 - 3.0, (phi0, phi)  # 0.585 -> -3.2436342; exact descent, same beta: -3.2436340
    h = res.history
    assert h["objective"][0] == pytest.approx(phi0, rel=1e-12)
    assert all(count == 13 for count in h["hvp"])  # 12 CG iterations + the mixed product, every iteration
    assert h["hvp_total"] == [13.0 * (k + 1) for k in range(25)]


def test_gradient_inner_loop_converges_to_the_exact_lower_level():
    """PARL's double loop: enough gradient steps on the logits from the uniform policy give the exact step."""
    prob, x0 = _problem(4, gamma=0.5, tau=1.0)
    algo = PARL(prob, x0, PARLConfig(beta=0.1, damping=1e-9, inner="gradient", inner_steps=300, inner_lr=4.0))
    row = algo.step()
    assert row["inner_iterations"] == 300
    assert _relative_error((x0 - algo.x) / 0.1, hypergradient(prob, x0)) <= 1e-7  # measured 6.1e-9
    few = PARL(prob, x0, PARLConfig(beta=0.1, inner="gradient", inner_steps=3, inner_lr=4.0))
    few.step()
    assert _relative_error((x0 - few.x) / 0.1, hypergradient(prob, x0)) > 1e-2  # measured 3.3e-2: it matters


def test_gradient_inner_loop_warm_starts_and_decreases_phi():
    prob, x0 = _problem(3)
    res = solve(prob, x0, method="parl", iterations=25, beta=0.2, inner="gradient", inner_steps=5)
    assert hyperobjective(prob, res.x).item() <= hyperobjective(prob, x0).item() - 3.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("beta", 0.0),
        ("damping", 0.0),
        ("damping", float("nan")),
        ("linear_solver", "lu"),
        ("cg_iterations", 0),
        ("cg_tol", -1e-10),
        ("neumann_eta", 0.0),
        ("neumann_iterations", 0),
        ("inner", "newton"),
        ("inner_steps", 0),
        ("inner_lr", -1.0),
        ("tol", 0.0),
    ],
)
def test_bad_config_values_name_the_field(field, value):
    prob, x0 = _problem(0, S=3, A=2, n=2)
    with pytest.raises(ValueError, match=field):
        solve(prob, x0, method="parl", iterations=1, **{field: value})


def test_sparse_transitions_are_rejected_with_the_reason():
    gen = torch.Generator().manual_seed(5)
    prob = nonlinear_problem(to_sparse(random_transitions(4, 2, gen)), gamma=0.9, tau=1.0, n=2, gen=gen)
    x0 = torch.zeros(2, dtype=F64)
    with pytest.raises(ValueError, match=r"PARL needs a dense P.*second derivatives"):
        solve(prob, x0, method="parl", iterations=1)
    with pytest.raises(ValueError, match="PARL needs a dense P"):
        parl_gradient(prob, x0, torch.zeros(4, 2, dtype=F64))
