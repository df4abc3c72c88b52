"""PBRL, the value-penalty baseline (docs/math.md, section 6): gradients of F_lambda, the penalty, runs, config."""

from __future__ import annotations

import pytest
import torch

from conftest import F64, central_difference, nonlinear_problem, random_transitions, to_sparse
from sobirl.algorithms import PBRL, PBRLConfig, solve
from sobirl.algorithms.pbrl import soft_return, theta_gradient, x_gradient
from sobirl.tabular import BilevelProblem, TabularMDP, hyperobjective, lower_level, policy_value
from sobirl.tabular.hypergrad import as_parameters

S, A, N = 5, 3, 3


def _problem(seed: int, *, sparse: bool = False, gamma: float = 0.8, tau: float = 0.5):
    gen = torch.Generator().manual_seed(seed)
    P = random_transitions(S, A, gen)
    prob = nonlinear_problem(to_sparse(P) if sparse else P, gamma=gamma, tau=tau, n=N, gen=gen)
    return prob, torch.randn(N, generator=gen, dtype=F64), gen


def _penalised(prob, x: torch.Tensor, theta: torch.Tensor, lam: float) -> torch.Tensor:
    """F_lambda(x, theta) from its definition: V* re-solved at x, V^{pi_theta} with the entropy bonus."""
    with torch.no_grad():
        r = prob.reward(x)
        pi = torch.softmax(theta, dim=1)
        v_star = prob.mdp.rho @ lower_level(prob, x, tol=1e-13).V
        v_theta = prob.mdp.rho @ policy_value(prob.mdp, pi, r, entropy=True)
        return prob.upper(x, pi) + lam * (v_star - v_theta)


def _gradients(prob, x: torch.Tensor, theta: torch.Tensor, lam: float):
    x = as_parameters(x)
    r = prob.reward(x)
    theta_star = lower_level(prob, x, tol=1e-13).Q / prob.mdp.tau
    return x_gradient(prob, x, r, theta, theta_star, lam), theta_gradient(prob, x, r, theta, lam)


@pytest.mark.parametrize("sparse", [False, True])
def test_gradients_match_finite_differences_of_the_penalised_objective(sparse):
    prob, x, gen = _problem(0, sparse=sparse)
    theta = torch.randn(S, A, generator=gen, dtype=F64)
    lam = 3.7
    info, grad_theta = _gradients(prob, x, theta, lam)

    assert info.value.item() == pytest.approx(_penalised(prob, x, theta, lam).item(), rel=1e-11)
    fd_x = central_difference(lambda y: _penalised(prob, y, theta, lam), x, 1e-4)
    fd_theta = central_difference(lambda t: _penalised(prob, x, t.view(S, A), lam), theta.reshape(-1), 1e-4)
    assert torch.linalg.vector_norm(info.grad - fd_x) <= 1e-6 * torch.linalg.vector_norm(fd_x)
    assert torch.linalg.vector_norm(grad_theta.reshape(-1) - fd_theta) <= 1e-6 * torch.linalg.vector_norm(fd_theta)
    # The penalty's x-gradient is not negligible here, so the check covers the Danskin term.
    df_dx = x_gradient(prob, as_parameters(x), prob.reward(as_parameters(x)), theta, theta, 0.0).grad
    assert torch.linalg.vector_norm(info.grad - df_dx) >= 0.1 * torch.linalg.vector_norm(info.grad)


def test_penalty_is_nonnegative_and_zero_at_the_soft_optimal_logits():
    prob, x, gen = _problem(1)
    theta_star = lower_level(prob, x, tol=1e-13).Q / prob.mdp.tau

    def penalty(theta: torch.Tensor) -> float:
        x_ = as_parameters(x)
        return x_gradient(prob, x_, prob.reward(x_), theta, theta_star, 1.0).penalty.item()

    assert abs(penalty(theta_star)) <= 1e-10
    scales = (0.01, 0.1, 1.0, 10.0)
    assert min(penalty(c * torch.randn(S, A, generator=gen, dtype=F64)) for c in scales for _ in range(5)) > 0.5
    near = penalty(theta_star + 1e-3 * torch.randn(S, A, generator=gen, dtype=F64))
    assert 0.0 < near < 1e-5  # quadratic in the distance to the optimum


def test_method_starts_at_the_soft_optimal_logits():
    prob, x0, _ = _problem(1)
    algo = PBRL(prob, x0, PBRLConfig())
    torch.testing.assert_close(algo.theta, lower_level(prob, x0).Q / prob.mdp.tau, rtol=1e-12, atol=1e-12)


def test_soft_return_is_the_entropy_regularised_value_and_survives_underflow():
    prob, x, gen = _problem(2)
    r = prob.reward(x)
    theta = torch.randn(S, A, generator=gen, dtype=F64)
    expected = prob.mdp.rho @ policy_value(prob.mdp, torch.softmax(theta, dim=1), r, entropy=True)
    assert soft_return(prob.mdp, theta, r).item() == pytest.approx(expected.item(), rel=1e-13)

    # tau = 1e-3 with rewards of order 1: pi* has entries that underflow to exactly 0.
    cold = TabularMDP(prob.mdp.P, gamma=0.9, tau=1e-3)
    r_cold = torch.randn(S, A, generator=gen, dtype=F64)
    theta_star = lower_level(BilevelProblem(cold, lambda _: r_cold, prob.upper_fn), x).Q / cold.tau
    assert torch.softmax(theta_star, dim=1).min() == 0.0
    theta_ = theta_star.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(soft_return(cold, theta_, r_cold), theta_)
    assert torch.isfinite(grad).all()
    assert grad.abs().max() <= 1e-8  # the soft-optimal logits are a stationary point of V(rho)


def test_one_step_is_the_double_loop():
    """Two theta steps on F_lambda / lambda, then x_1 = x_0 - beta d_x F_lambda (finite differences) at that theta."""
    prob, x0, _ = _problem(4)
    cfg = PBRLConfig(beta=0.1, theta_lr=0.7, inner_steps=2, lambda0=2.0, growth=1.5, lambda_max=2.5)
    algo = PBRL(prob, x0, cfg)
    theta = algo.theta.clone()
    row = algo.step()

    for _ in range(2):
        fd = central_difference(lambda t: _penalised(prob, x0, t.view(S, A), 2.0), theta.reshape(-1), 1e-4)
        theta = theta - (0.7 / 2.0) * fd.view(S, A)
    torch.testing.assert_close(algo.theta, theta, rtol=1e-8, atol=1e-9)
    grad = central_difference(lambda y: _penalised(prob, y, theta, 2.0), x0, 1e-4)
    torch.testing.assert_close(algo.x, x0 - 0.1 * grad, rtol=1e-8, atol=1e-9)
    assert row["grad_norm"] == pytest.approx(torch.linalg.vector_norm(grad).item(), rel=1e-8)
    assert row["penalty"] == pytest.approx((_penalised(prob, x0, theta, 1.0) - _penalised(prob, x0, theta, 0.0)).item())
    pi_star = lower_level(prob, x0).pi
    assert row["policy_gap"] == pytest.approx((torch.softmax(theta, dim=1) - pi_star).abs().max().item(), rel=1e-8)
    assert [row["lambda"], algo.step()["lambda"], algo.step()["lambda"]] == [2.0, 2.5, 2.5]  # min(2.5, 2 * 1.5^k)


def _run(prob, x0, lambda_max: float):
    return solve(prob, x0, method="pbrl", iterations=300, beta=8e-3, growth=1.03, lambda_max=lambda_max)


def test_run_reduces_phi_and_the_policy_gap_shrinks_like_one_over_lambda():
    """Measured (seed 1): phi 1.067 -> -0.937 (exact optimum -0.939); final gap 0.74, 0.111, 0.0103 and
    penalty 1.16, 2.9e-2, 3.0e-4 for lambda_max = 1, 10, 100."""
    prob, x0, _ = _problem(1)
    runs = {lam: _run(prob, x0, lam) for lam in (1.0, 10.0, 100.0)}
    res = runs[100.0]
    h = res.history

    assert h["lambda"][0] == 1.0 and h["lambda"][-1] == 100.0
    assert min(h["penalty"]) >= -1e-12
    assert h["penalty"][-1] <= 1e-3 <= 1e-2 * max(h["penalty"])
    phi0, phi = hyperobjective(prob, x0).item(), hyperobjective(prob, res.x).item()
    assert phi0 == pytest.approx(1.0666, abs=1e-3)
    assert phi <= phi0 - 1.9
    assert phi == pytest.approx(-0.939, abs=0.01)  # the exact method's limit, up to the O(1/lambda) bias
    assert h["objective"][-1] == pytest.approx(phi, abs=0.1)  # f at pi_theta, not pi*: measured -0.997

    gaps = {lam: run.history["policy_gap"][-1] for lam, run in runs.items()}
    assert gaps[1.0] > 0.5
    assert gaps[10.0] < 0.2 * gaps[1.0]
    assert gaps[100.0] < 0.2 * gaps[10.0]
    assert 100.0 * gaps[100.0] == pytest.approx(10.0 * gaps[10.0], rel=0.3)  # gap ~ 1/lambda
    assert h["policy_gap"][-1] < 0.2 * h["policy_gap"][75]  # within one run, as lambda grows from 9.2 to 100


def test_sparse_and_dense_runs_agree():
    dense, x0, _ = _problem(3)
    sparse, _, _ = _problem(3, sparse=True)
    a = solve(dense, x0, method="pbrl", iterations=5, beta=0.05)
    b = solve(sparse, x0, method="pbrl", iterations=5, beta=0.05)
    torch.testing.assert_close(a.x, b.x, rtol=1e-9, atol=1e-11)
    assert a.history["penalty"] == pytest.approx(b.history["penalty"], rel=1e-8, abs=1e-12)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("beta", 0.0),
        ("theta_lr", -1.0),
        ("inner_steps", 0),
        ("lambda0", 0.0),
        ("growth", 0.99),
        ("lambda_max", 0.5),
        ("tol", 0.0),
        ("beta", float("nan")),
    ],
)
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PBRLConfig(**{field: value})
    prob, x0, _ = _problem(0)
    with pytest.raises(ValueError, match=field):
        solve(prob, x0, method="pbrl", iterations=1, **{field: value})


def test_lambda_max_below_lambda0_is_rejected():
    with pytest.raises(ValueError, match=r"lambda_max must be in \[10"):
        PBRLConfig(lambda0=10.0, lambda_max=5.0)
