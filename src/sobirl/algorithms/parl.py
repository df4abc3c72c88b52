"""PARL: approximate implicit differentiation with second-order information (docs/math.md, section 6).

Chakraborty et al., "PARL: A Unified Framework for Policy Alignment in RLHF", ICLR 2024. The follower's
problem is written in softmax logits ``theta`` (S x A), ``pi_theta = softmax(theta)``, as a minimisation:

    g(x, theta) = -V^{pi_theta}_{tau, r_x}(rho)                     # soft value from the MDP's rho
    grad = d_x f - (d2_{x theta} g)^T (d2_{theta theta} g + mu I)^{-1} d_theta f,    f = f(x, pi_theta)
    x_{k+1} = x_k - beta * grad

``V^{pi}`` is :func:`sobirl.tabular.evaluation.policy_value` (dense ``P``: differentiable to any order), fed the
reward ``r_x - tau log pi_theta`` (``log_softmax``), whose policy average is the entropy-regularised reward
``E_pi[r_x] + tau H(pi)``: the same value as ``entropy=True``, but its derivatives stay finite when a
probability underflows to 0 (``xlogy`` gives NaN there). ``d_theta f = pi * (G - E_pi[G])`` (the softmax
Jacobian applied to ``G = d_pi f``). The Hessian ``H = d2_{theta theta} g`` enters only through Hessian-vector
products (double backward through the gradient ``d_theta g``, whose graph is built once per hyper-gradient), the
linear system is solved by conjugate gradient or a truncated Neumann series, and the mixed term is ONE more
backward pass of ``d_theta g . v`` into ``x`` (a vector-Jacobian product through ``r_x``).

Damping. ``g`` is invariant under a per-state logit shift ``theta(s, .) + c``, so ``H`` is singular along the S
shift directions. ``d_theta f`` and every column of ``d2_{x theta} g`` are orthogonal to them (both see
``theta`` only through ``pi``), so on their span ``(H + mu I)^{-1} = H^+ + O(mu)``: the gradient converges to the
pseudo-inverse formula as ``mu -> 0`` with an error ``O(mu / lambda_min^+)`` (smallest non-zero eigenvalue of
``H``). At the follower's optimum that formula is the exact hyper-gradient of section 3, provided every state is
reached from ``rho`` (the default uniform ``rho`` guarantees it): a state ``rho`` never reaches does not enter
``g``, and PARL cannot see how its policy moves with ``x``.

Lower level: ``inner="exact"`` sets ``theta = Q*(x)/tau`` (soft policy iteration to ``tol``, warm-started);
``inner="gradient"`` is PARL's double loop, ``inner_steps`` steps ``theta <- theta - inner_lr d_theta g`` from the
previous logits (uniform policy at the start). A sparse ``P`` is rejected: the Hessian-vector products need second
derivatives of policy evaluation, which only the dense path provides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sobirl.algorithms.base import MethodConfig, OuterLoop
from sobirl.tabular.evaluation import policy_value
from sobirl.tabular.hypergrad import TOL, as_parameters, upper_partials
from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.soft import soft_policy_iteration
from sobirl.validation import check_choice, check_int, check_range

LINEAR_SOLVERS = ("cg", "neumann")
"""Solvers of ``(H + mu I) v = d_theta f``."""

INNER = ("exact", "gradient")
"""Lower-level updates: the follower's exact optimum, or gradient steps on the logits."""


def require_dense(mdp: TabularMDP) -> None:
    """Raise ``ValueError`` for a sparse ``P``: PARL needs second derivatives of policy evaluation."""
    if mdp.is_sparse:
        raise ValueError(
            "PARL needs a dense P: its Hessian-vector products need second derivatives of policy evaluation, "
            "and only the dense path of policy_value is differentiable twice (a sparse P is never densified); "
            "pass P as a dense (S, A, S) tensor or use another method"
        )


def lower_objective(mdp: TabularMDP, theta: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``g(x, theta) = -rho^T V^{softmax(theta)}_{tau, r}``, differentiable to any order in ``theta`` and ``r``."""
    log_pi = torch.log_softmax(theta, dim=1)
    return -(mdp.rho @ policy_value(mdp, log_pi.exp(), r - mdp.tau * log_pi))


def parl_gradient(
    prob: BilevelProblem,
    x: torch.Tensor,
    theta: torch.Tensor,
    *,
    damping: float = 1e-6,
    solver: str = "cg",
    iterations: int = 100,
    tol: float = 1e-10,
    eta: float = 1.0,
    r: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """PARL's hyper-gradient ``d_x f - (d2_{x theta} g)^T (H + mu I)^{-1} d_theta f`` at ``(x, theta)``.

    Args:
        prob: the bilevel problem (dense ``P``).
        x: leader parameters (n,).
        theta: the follower's logits (S, A); ``Q*(x) / tau`` gives the exact hyper-gradient as ``damping -> 0``.
        damping: mu > 0, added to the Hessian (singular along per-state logit shifts).
        solver: ``"cg"`` (conjugate gradient) or ``"neumann"`` (the series ``eta sum_k (I - eta (H + mu I))^k b``).
        iterations: most Hessian-vector products of the solver; CG may stop earlier, Neumann uses all of them.
        tol: CG stops when ``|b - (H + mu I) v| <= tol |b|``.
        eta: Neumann step size; the series converges when ``eta < 2 / (lambda_max(H) + mu)``.
        r: ``r_fn(x)`` with its graph to ``x`` (a leaf that requires grad) if already computed (saves one
            ``r_fn`` call).

    Returns:
        ``(grad, objective, hvp)``: the gradient (n,), ``f(x, softmax(theta))`` and the number of second-order
        products computed (the solver's Hessian-vector products plus the one mixed product; 0 when
        ``d_theta f = 0``, which makes the gradient ``d_x f``).

    Raises:
        ValueError: a sparse ``P``, bad ``theta`` shape or bad solver settings.
    """
    mdp = prob.mdp
    require_dense(mdp)
    check_choice("solver", solver, LINEAR_SOLVERS)
    check_range("damping", damping, low=0.0, low_open=True)
    check_int("iterations", iterations, low=1)
    check_range("tol", tol, low=0.0, low_open=True)
    check_range("eta", eta, low=0.0, low_open=True)
    if tuple(theta.shape) != mdp.shape:
        raise ValueError(f"theta must have shape (S, A) = {mdp.shape}, got {tuple(theta.shape)}")
    if r is None:
        x = as_parameters(x)
        with torch.enable_grad():
            r = prob.reward(x)
    theta = theta.detach().to(DTYPE).requires_grad_(True)
    pi = torch.softmax(theta.detach(), dim=1)
    partials = upper_partials(prob, x, pi)
    b = pi * (partials.G - (pi * partials.G).sum(dim=1, keepdim=True))  # d_theta f through the softmax
    if not b.any():  # f does not see the policy: nothing to invert
        return partials.df_dx.clone(), partials.value, 0
    with torch.enable_grad():
        (dg_dtheta,) = torch.autograd.grad(lower_objective(mdp, theta, r), theta, create_graph=True)

        def damped_hvp(v: torch.Tensor) -> torch.Tensor:
            (Hv,) = torch.autograd.grad(dg_dtheta, theta, grad_outputs=v, retain_graph=True)
            return Hv + damping * v

        if solver == "cg":
            v, count = conjugate_gradient(damped_hvp, b, iterations=iterations, tol=tol)
        else:
            v, count = neumann_series(damped_hvp, b, iterations=iterations, eta=eta)
        (mixed,) = torch.autograd.grad(dg_dtheta, x, grad_outputs=v, allow_unused=True)
    grad = partials.df_dx if mixed is None else partials.df_dx - mixed
    return grad.detach(), partials.value, count + 1


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, iterations: int, tol: float
) -> tuple[torch.Tensor, int]:
    """Conjugate gradient for ``M v = b`` (M symmetric positive definite) from ``v = 0``.

    Stops when ``|b - M v| <= tol |b|``, after ``iterations`` products, or at a direction of non-positive
    curvature (``M`` indefinite: logits far from the follower's optimum), keeping the iterate reached.

    Returns:
        ``(v, products)``: the solution and the number of products with ``M`` computed.
    """
    v = torch.zeros_like(b)
    residual, direction = b.clone(), b.clone()
    rr = torch.sum(residual * residual).item()
    stop = tol**2 * rr
    for k in range(1, iterations + 1):
        Md = matvec(direction)
        curvature = torch.sum(direction * Md).item()
        if curvature <= 0.0:
            return v, k
        alpha = rr / curvature
        v = v + alpha * direction
        residual = residual - alpha * Md
        rr_new = torch.sum(residual * residual).item()
        if rr_new <= stop:
            return v, k
        direction = residual + (rr_new / rr) * direction
        rr = rr_new
    return v, iterations


def neumann_series(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, iterations: int, eta: float
) -> tuple[torch.Tensor, int]:
    """The truncated Neumann series ``M^{-1} b ~ eta sum_{k=0}^{K} (I - eta M)^k b`` with ``K = iterations``.

    Written as Richardson's iteration ``v <- v + eta (b - M v)`` from ``v = eta b``: one product with ``M`` per
    term after the first. It converges when the spectrum of ``eta M`` lies in ``(0, 2)``.

    Returns:
        ``(v, products)``: the partial sum and the number of products with ``M`` (``iterations``).
    """
    v = eta * b
    for _ in range(iterations):
        v = v + eta * (b - matvec(v))
    return v, iterations


@dataclass(frozen=True)
class PARLConfig(MethodConfig):
    """Hyper-parameters of PARL.

    Attributes:
        damping: mu > 0 added to the lower-level Hessian; the gradient is exact as mu -> 0 (module docstring).
        linear_solver: ``"cg"`` (conjugate gradient) or ``"neumann"`` (truncated Neumann series).
        cg_iterations: most CG iterations, one Hessian-vector product each (>= 1).
        cg_tol: CG's relative residual tolerance (> 0).
        neumann_eta: Neumann step size (> 0); converges when ``< 2 / (lambda_max(H) + mu)``.
        neumann_iterations: Neumann terms after the first, one Hessian-vector product each (>= 1).
        inner: ``"exact"`` (``theta = Q*(x)/tau``) or ``"gradient"`` (gradient steps on the logits).
        inner_steps: gradient steps on theta per outer iteration (>= 1; ``inner="gradient"``).
        inner_lr: their step size (> 0).
        tol: lower-level tolerance of ``inner="exact"`` (scaled Bellman residual, > 0).
    """

    damping: float = 1e-6
    linear_solver: str = "cg"
    cg_iterations: int = 100
    cg_tol: float = 1e-10
    neumann_eta: float = 1.0
    neumann_iterations: int = 100
    inner: str = "exact"
    inner_steps: int = 10
    inner_lr: float = 1.0
    tol: float = TOL

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("damping", self.damping, low=0.0, low_open=True)
        check_choice("linear_solver", self.linear_solver, LINEAR_SOLVERS)
        check_int("cg_iterations", self.cg_iterations, low=1)
        check_range("cg_tol", self.cg_tol, low=0.0, low_open=True)
        check_range("neumann_eta", self.neumann_eta, low=0.0, low_open=True)
        check_int("neumann_iterations", self.neumann_iterations, low=1)
        check_choice("inner", self.inner, INNER)
        check_int("inner_steps", self.inner_steps, low=1)
        check_range("inner_lr", self.inner_lr, low=0.0, low_open=True)
        check_range("tol", self.tol, low=0.0, low_open=True)


class PARL(OuterLoop):
    """PARL (Chakraborty et al. 2024): AID with Hessian-vector products in the follower's logits.

    History columns besides ``objective`` (``f(x_k, softmax(theta_k))``) and ``grad_norm``: ``hvp`` (second-order
    products this iteration: the linear solver's Hessian-vector products plus the mixed product), ``hvp_total``
    (cumulative) and ``inner_iterations`` (Newton steps of the exact lower level, or gradient steps on theta).
    """

    name = "parl"
    Config = PARLConfig

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: PARLConfig) -> None:
        require_dense(prob.mdp)
        super().__init__(prob, x0, config)
        self.theta = torch.zeros(self.mdp.shape, dtype=DTYPE, device=self.x.device)
        self.V: torch.Tensor | None = None
        self.hvp_total = 0

    def _update_lower(self, r: torch.Tensor) -> int:
        """Move ``theta`` towards ``argmin g(x, .)`` for the reward ``r``; returns the inner iterations taken."""
        cfg: PARLConfig = self.config  # type: ignore[assignment]
        if cfg.inner == "exact":
            solution = soft_policy_iteration(self.mdp, r, cfg.tol, V0=self.V)
            self.V, self.theta = solution.V, solution.Q / self.mdp.tau
            return solution.iterations
        theta = self.theta
        for _ in range(cfg.inner_steps):
            theta = theta.detach().requires_grad_(True)
            with torch.enable_grad():
                (dg_dtheta,) = torch.autograd.grad(lower_objective(self.mdp, theta, r), theta)
            theta = theta - cfg.inner_lr * dg_dtheta
        self.theta = theta.detach()
        return cfg.inner_steps

    def step(self) -> dict[str, float]:
        cfg: PARLConfig = self.config  # type: ignore[assignment]
        x = as_parameters(self.x)
        with torch.enable_grad():
            r = self.prob.reward(x)
        inner_iterations = self._update_lower(r.detach())
        cg = cfg.linear_solver == "cg"
        grad, objective, hvp = parl_gradient(
            self.prob,
            x,
            self.theta,
            damping=cfg.damping,
            solver=cfg.linear_solver,
            iterations=cfg.cg_iterations if cg else cfg.neumann_iterations,
            tol=cfg.cg_tol,
            eta=cfg.neumann_eta,
            r=r,
        )
        self.hvp_total += hvp
        grad_norm = self.descend(grad)
        return {
            "objective": objective.item(),
            "grad_norm": grad_norm,
            "hvp": float(hvp),
            "hvp_total": float(self.hvp_total),
            "inner_iterations": float(inner_iterations),
        }
