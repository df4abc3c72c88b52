"""PBRL: value-penalty method, first order, double loop (Shen et al., ICML 2024; docs/math.md, section 6).

The follower's policy is a free variable ``pi_theta = softmax(theta)`` (``theta``: ``S x A`` logits), and the
lower-level constraint ``pi = pi*(x)`` is replaced by a penalty on the follower's soft-value gap at ``rho``:

    F_lambda(x, theta) = f(x, pi_theta) + lambda * p(x, theta),
    p(x, theta)        = V*_x(rho) - V^{pi_theta}_x(rho)  >= 0,

with the soft (entropy-regularised) values of section 1, ``V^pi_x(rho) = rho^T (I - gamma P_pi)^{-1} c_pi``,
``c_pi(s) = sum_a pi(a|s) (r_x(s, a) - tau log pi(a|s))``, and ``V*_x = max_pi V^pi_x`` the soft-optimal value
(section 2). ``p = 0`` exactly when ``pi_theta = pi*(x)``, the unique soft-optimal policy.

Gradients (section 6):

    d_theta F_lambda = d_theta f - lambda d_theta V^{pi_theta}_x(rho)     # exact policy gradient in logits
    d_x F_lambda     = d_x f + lambda J^T (d^{pi*} pi* - d^{pi_theta} pi_theta)    # J = d r_x / d x

where ``d^pi = (I - gamma P_pi)^{-T} rho`` is the discounted state occupancy of ``pi`` and
``(d^pi pi)(s, a) = d^pi(s) pi(a|s)``: both are discounted sums of ``J`` under the two policies. The ``pi*`` term is
Danskin's theorem: ``d V*_x(rho) / dx`` is the x-gradient of ``V^{pi}_x(rho)`` at the fixed ``pi = pi*(x)``.
The whole x-gradient is ONE backward pass through one scalar surrogate (``r_x`` evaluated once per step);
each theta step is one backward pass.

Per outer iteration k (the double loop):

    lambda_k = min(lambda_max, lambda0 * growth^k)
    repeat inner_steps:  theta <- theta - (theta_lr / lambda_k) d_theta F_lambda_k(x_k, theta)
    pi*(x_k) by soft policy iteration, warm-started from the previous V*
    x_{k+1} = x_k - beta d_x F_lambda_k(x_k, theta)

The theta step is gradient descent on ``F_lambda / lambda`` (same minimiser in theta): its curvature in theta
is ``O(lambda)``, so a fixed step on ``F_lambda`` itself would diverge as lambda grows. ``theta_0 = Q*(x_0) / tau``,
the follower's soft-optimal logits, so ``p(x_0, theta_0) = 0``.

Stability caps lambda: at fixed theta, ``F_lambda`` has curvature ``O(lambda)`` in x too, and a fixed number of
theta steps only tracks the moving ``pi*(x)`` up to an error that the x-gradient multiplies by lambda. The x step
is stable while ``beta * lambda`` stays O(1) (measured on 5-state nonlinear problems at beta = 8e-3: stable with
lambda_max = 100, divergent within 1500 iterations with lambda_max = 1e3 even with 30 inner steps), hence the
default ``lambda_max = 100``. The limit point is then ``O(1/lambda_max)`` away from the bilevel solution
(policy gap ~ 1/lambda, penalty ~ 1/lambda^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.algorithms.base import MethodConfig, OuterLoop
from sobirl.tabular.evaluation import policy_value
from sobirl.tabular.hypergrad import TOL, as_parameters, lower_level
from sobirl.tabular.mdp import TabularMDP
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.soft import soft_policy_iteration
from sobirl.validation import check_int, check_range


@dataclass(frozen=True)
class PBRLConfig(MethodConfig):
    """Hyper-parameters of PBRL.

    Attributes:
        theta_lr: follower step size on ``d_theta F_lambda / lambda`` (> 0).
        inner_steps: theta gradient steps per outer iteration (>= 1).
        lambda0: initial penalty weight (> 0).
        growth: lambda's geometric growth factor per outer iteration (>= 1; 1 keeps lambda fixed).
        lambda_max: cap on lambda (>= lambda0).
        tol: tolerance of the soft policy iteration that computes ``V*`` (scaled Bellman residual, > 0).
    """

    theta_lr: float = 1.0
    inner_steps: int = 10
    lambda0: float = 1.0
    growth: float = 1.01
    lambda_max: float = 100.0
    tol: float = TOL

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("theta_lr", self.theta_lr, low=0.0, low_open=True)
        check_int("inner_steps", self.inner_steps, low=1)
        check_range("lambda0", self.lambda0, low=0.0, low_open=True)
        check_range("growth", self.growth, low=1.0)
        check_range("lambda_max", self.lambda_max, low=self.lambda0)
        check_range("tol", self.tol, low=0.0, low_open=True)


@dataclass(frozen=True)
class PenaltyGradient:
    """``F_lambda``, its parts and its x-gradient at one ``(x, theta)``.

    Attributes:
        grad: ``d_x F_lambda`` (n,).
        value: ``F_lambda = f + lambda * penalty``.
        objective: ``f(x, pi_theta)``.
        penalty: ``V*_x(rho) - V^{pi_theta}_x(rho)``.
    """

    grad: torch.Tensor
    value: torch.Tensor
    objective: torch.Tensor
    penalty: torch.Tensor


def soft_return(mdp: TabularMDP, theta: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``V^{pi_theta}(rho)``, the soft value at ``rho`` of ``pi_theta = softmax(theta)``; differentiable in both."""
    return mdp.rho @ policy_value(mdp, torch.softmax(theta, dim=1), r, entropy=True)


def theta_gradient(
    prob: BilevelProblem, x: torch.Tensor, r: torch.Tensor, theta: torch.Tensor, lam: float
) -> torch.Tensor:
    """``d_theta F_lambda = d_theta f(x, pi_theta) - lambda d_theta V^{pi_theta}_x(rho)``, one backward pass.

    Args:
        prob: the bilevel problem.
        x: leader parameters.
        r: the reward table ``r_x`` (its graph, if any, is not used).
        theta: the follower's logits ``(S, A)``.
        lam: the penalty weight lambda.
    """
    theta_ = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        F = prob.upper(x.detach(), torch.softmax(theta_, dim=1)) - lam * soft_return(prob.mdp, theta_, r.detach())
        (grad,) = torch.autograd.grad(F, theta_)
    return grad


def x_gradient(
    prob: BilevelProblem,
    x: torch.Tensor,
    r: torch.Tensor,
    theta: torch.Tensor,
    theta_star: torch.Tensor,
    lam: float,
) -> PenaltyGradient:
    """``d_x F_lambda = d_x f + lambda (d V*_x(rho)/dx - d V^{pi_theta}_x(rho)/dx)`` by ONE backward pass.

    Args:
        prob: the bilevel problem.
        x: leader parameters, a leaf that requires grad.
        r: ``prob.reward(x)`` with its graph to ``x``.
        theta: the follower's logits ``(S, A)`` (held fixed).
        theta_star: soft-optimal logits ``Q*_x / tau`` at ``x`` (held fixed: Danskin's theorem).
        lam: the penalty weight lambda.
    """
    with torch.enable_grad():
        f = prob.upper(x, torch.softmax(theta.detach(), dim=1))
        penalty = soft_return(prob.mdp, theta_star.detach(), r) - soft_return(prob.mdp, theta.detach(), r)
        F = f + lam * penalty
        # F is free of x only when both r_x and f are (a constant reward and an f of pi alone).
        (grad,) = torch.autograd.grad(F, x, allow_unused=True) if F.requires_grad else (None,)
    grad = torch.zeros_like(x) if grad is None else grad
    return PenaltyGradient(grad=grad, value=F.detach(), objective=f.detach(), penalty=penalty.detach())


class PBRL(OuterLoop):
    """PBRL (Shen et al. 2024): alternating gradient descent on the value-penalised objective ``F_lambda``.

    History columns, all at ``(x_k, theta)`` after the theta steps and before the x step: ``objective`` =
    ``f(x_k, pi_theta)``, ``grad_norm`` = ``|d_x F_lambda|``, ``penalty`` = ``V*(rho) - V^{pi_theta}(rho)``,
    ``lambda`` = ``lambda_k``, ``policy_gap`` = ``max |pi_theta - pi*(x_k)|``, ``inner_iterations`` = Newton
    steps of the warm-started ``V*`` solve.
    """

    name = "pbrl"
    Config = PBRLConfig

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: PBRLConfig) -> None:
        super().__init__(prob, x0, config)
        solution = lower_level(prob, self.x, tol=config.tol)
        self.V_star = solution.V
        self.theta = solution.Q / self.mdp.tau
        self.lam = config.lambda0

    def step(self) -> dict[str, float]:
        cfg: PBRLConfig = self.config  # type: ignore[assignment]
        lam = self.lam
        x = as_parameters(self.x)
        with torch.enable_grad():
            r = self.prob.reward(x)
        for _ in range(cfg.inner_steps):
            self.theta = self.theta - (cfg.theta_lr / lam) * theta_gradient(self.prob, x, r, self.theta, lam)
        solution = soft_policy_iteration(self.mdp, r.detach(), cfg.tol, V0=self.V_star)
        self.V_star = solution.V
        info = x_gradient(self.prob, x, r, self.theta, solution.Q / self.mdp.tau, lam)
        # lambda_{k+1} = min(lambda_max, growth lambda_k): growth^k itself would overflow in long runs.
        self.lam = min(cfg.lambda_max, cfg.growth * lam)
        grad_norm = self.descend(info.grad)
        return {
            "objective": info.objective.item(),
            "grad_norm": grad_norm,
            "penalty": info.penalty.item(),
            "lambda": lam,
            "policy_gap": (torch.softmax(self.theta, dim=1) - solution.pi).abs().max().item(),
            "inner_iterations": float(solution.iterations),
        }
