"""The soft Bellman operator and the follower's solvers (docs/math.md, section 2).

    Q(s,a)  = r(s,a) + gamma * sum_s' P(s'|s,a) V(s')
    V(s)    = tau * logsumexp_a(Q(s,a) / tau)
    pi(a|s) = softmax_a(Q(s,.) / tau)

Two solvers reach the fixed point to a tolerance on the scaled Bellman residual
``|T V - V|_inf / max(1, |V|_inf)`` (scaled so that a tolerance near rounding stays reachable when values are
large, e.g. rewards of 1e3 at gamma = 0.99):

- :func:`soft_value_iteration`: repeated application of ``T`` (a gamma-contraction; the step M-SoBiRL takes);
- :func:`soft_policy_iteration`: Newton's method on ``V - T V = 0``. Its Jacobian is ``I - gamma P_pi``, and a
  Newton step is exactly soft policy evaluation of ``pi = softmax(Q/tau)``, so it converges globally
  (monotonically, like policy iteration) and quadratically near the solution: a handful of linear solves
  instead of ``O(1/(1-gamma))`` sweeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sobirl.tabular.linear import RTOL, solve_evaluation
from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.validation import check_choice, check_finite, check_int, check_range

SOLVERS = ("policy-iteration", "value-iteration")
"""Names accepted wherever a lower-level solver is chosen."""


class ConvergenceError(RuntimeError):
    """The lower-level solver hit its iteration limit before its tolerance."""


@dataclass(frozen=True)
class SoftSolution:
    """The follower's entropy-regularised optimum for one reward table.

    Attributes:
        V: soft state values ``(S,)``.
        Q: soft action values ``(S, A)``.
        pi: the optimal policy ``softmax(Q / tau)``, ``(S, A)``.
        iterations: Bellman sweeps (value iteration) or Newton steps (policy iteration) taken.
        residual: final scaled Bellman residual ``|T V - V|_inf / max(1, |V|_inf)``.
    """

    V: torch.Tensor
    Q: torch.Tensor
    pi: torch.Tensor
    iterations: int
    residual: float


def soft_q(mdp: TabularMDP, r: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """``Q = r + gamma P V`` for a value vector ``V`` of shape ``(S,)``."""
    return r + mdp.gamma * mdp.expect(V)


def soft_v(Q: torch.Tensor, tau: float) -> torch.Tensor:
    """``V = tau * logsumexp(Q / tau)`` over actions, computed stably for any ``tau > 0``."""
    return tau * torch.logsumexp(Q / tau, dim=1)


def soft_policy(Q: torch.Tensor, tau: float) -> torch.Tensor:
    """``pi = softmax(Q / tau)`` over actions."""
    return torch.softmax(Q / tau, dim=1)


def soft_bellman(mdp: TabularMDP, r: torch.Tensor, Q: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """Apply the soft Bellman operator on Q-tables ``steps`` times: ``Q <- r + gamma P (tau lse(Q/tau))``."""
    for _ in range(steps):
        Q = soft_q(mdp, r, soft_v(Q, mdp.tau))
    return Q


def check_reward(mdp: TabularMDP, r: torch.Tensor, name: str = "reward") -> torch.Tensor:
    """Validate a reward table: a finite ``(S, A)`` floating tensor; returned as float64."""
    if not isinstance(r, torch.Tensor) or not r.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.Tensor of shape (S, A) = {mdp.shape}")
    if tuple(r.shape) != mdp.shape:
        raise ValueError(f"{name} must have shape (S, A) = {mdp.shape}, got {tuple(r.shape)}")
    check_finite(name, r)
    return r.to(DTYPE)


def soft_value_iteration(
    mdp: TabularMDP,
    r: torch.Tensor,
    tol: float = 1e-10,
    *,
    V0: torch.Tensor | None = None,
    max_iter: int | None = None,
) -> SoftSolution:
    """Soft value iteration ``V <- T V`` until the scaled Bellman residual is ``<= tol``.

    Args:
        mdp: the MDP.
        r: reward table ``(S, A)``.
        tol: tolerance on the scaled Bellman residual (the error in ``V`` is then at most
            ``tol * max(1, |V|_inf) / (1 - gamma)``).
        V0: warm start ``(S,)``; zeros when ``None``.
        max_iter: most sweeps; by default enough for the contraction to cover ``tol`` from ``V0``, times 2.

    Raises:
        ConvergenceError: when ``max_iter`` sweeps do not reach ``tol``.
    """
    r = check_reward(mdp, r)
    tol = check_range("tol", tol, low=0.0, low_open=True)
    V = torch.zeros(mdp.n_states, dtype=DTYPE, device=r.device) if V0 is None else V0.to(DTYPE)
    if max_iter is None:
        max_iter = _default_sweeps(mdp, r, tol)
    check_int("max_iter", max_iter, low=1)
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is read after the loop)
        Q = soft_q(mdp, r, V)
        V_new = soft_v(Q, mdp.tau)
        residual = _scaled_residual(V_new, V)
        V = V_new
        if residual <= tol:
            break
    else:
        raise ConvergenceError(f"soft value iteration: residual {residual:.3g} > tol={tol:g} after {max_iter} sweeps")
    Q = soft_q(mdp, r, V)
    return SoftSolution(V=V, Q=Q, pi=soft_policy(Q, mdp.tau), iterations=it, residual=residual)


def soft_policy_iteration(
    mdp: TabularMDP,
    r: torch.Tensor,
    tol: float = 1e-10,
    *,
    V0: torch.Tensor | None = None,
    max_iter: int = 200,
) -> SoftSolution:
    """Newton's method on the soft Bellman equation (soft policy iteration) until the scaled residual ``<= tol``.

    Each step: ``Q = r + gamma P V``, ``pi = softmax(Q/tau)``, then solve
    ``(I - gamma P_pi) V' = sum_a pi (r - tau log pi)`` (soft policy evaluation, docs/math.md section 2).
    With a sparse ``P`` the step is inexact Newton: the iterative linear solve only has to shrink the Bellman
    residual by ``min(0.1, residual)``, so the early steps, far from the solution, stay cheap while the last
    ones are solved to rounding and keep the quadratic convergence.

    Raises:
        ConvergenceError: when ``max_iter`` Newton steps do not reach ``tol`` (e.g. ``tol`` below rounding).
    """
    r = check_reward(mdp, r)
    tol = check_range("tol", tol, low=0.0, low_open=True)
    check_int("max_iter", max_iter, low=1)
    V = torch.zeros(mdp.n_states, dtype=DTYPE, device=r.device) if V0 is None else V0.to(DTYPE)
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is read after the loop)
        PV = mdp.expect(V)
        Q = r + mdp.gamma * PV
        TV = soft_v(Q, mdp.tau)
        residual = _scaled_residual(TV, V)
        if residual <= tol:
            break
        pi = soft_policy(Q, mdp.tau)
        # r_pi + tau H(pi) written as TV - gamma P_pi V: avoids log(pi) when pi underflows to 0.
        b = TV - mdp.gamma * (pi * PV).sum(dim=1)
        # From the warm start V the linear residual b - (I - gamma P_pi) V is exactly TV - V.
        forcing = min(0.1, residual) * torch.linalg.vector_norm(TV - V) / torch.linalg.vector_norm(b)
        V = solve_evaluation(mdp, pi, b, x0=V, rtol=max(forcing.item(), RTOL))
    else:
        raise ConvergenceError(f"soft policy iteration: residual {residual:.3g} > tol={tol:g} after {max_iter} steps")
    return SoftSolution(V=V, Q=Q, pi=soft_policy(Q, mdp.tau), iterations=it - 1, residual=residual)


def solve_lower(
    mdp: TabularMDP,
    r: torch.Tensor,
    *,
    solver: str = "policy-iteration",
    tol: float = 1e-10,
    V0: torch.Tensor | None = None,
) -> SoftSolution:
    """Dispatch to a lower-level solver by name (one of :data:`SOLVERS`)."""
    check_choice("solver", solver, SOLVERS)
    if solver == "value-iteration":
        return soft_value_iteration(mdp, r, tol, V0=V0)
    return soft_policy_iteration(mdp, r, tol, V0=V0)


def _default_sweeps(mdp: TabularMDP, r: torch.Tensor, tol: float) -> int:
    """Twice the sweeps the contraction bound needs to bring an initial residual ``~|r| + tau log A`` to tol."""
    if mdp.gamma == 0.0:
        return 2
    scale = r.abs().max().item() + mdp.tau * math.log(mdp.n_actions) + 1.0
    sweeps = math.log(tol / scale) / math.log(mdp.gamma)
    return 2 * max(1, math.ceil(sweeps)) + 10


def _scaled_residual(TV: torch.Tensor, V: torch.Tensor) -> float:
    return ((TV - V).abs().max() / V.abs().max().clamp(min=1.0)).item()
