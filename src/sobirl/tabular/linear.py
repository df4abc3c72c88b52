"""Linear systems with ``I - gamma P_pi`` and its transpose (docs/math.md, section 3).

Dense ``P``: ``P_pi`` is formed (``S x S``, no bigger than ``P``) and solved directly by LU.
Sparse ``P``: Jacobi-preconditioned BiCGSTAB using only products with ``P`` and ``P^T``, so nothing of size
``S x S`` is ever built. ``I - gamma P_pi`` is diagonally dominant (its off-diagonal mass per row is
``gamma P_pi(s, s') <= gamma < 1``), which keeps the Krylov iteration short even for ``gamma = 0.99``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sobirl.tabular.mdp import TabularMDP

RTOL = 1e-13
"""Default relative residual ``|b - M x| / |b|`` at which the iterative solver stops."""


class LinearSolveError(RuntimeError):
    """The iterative solver did not reach its tolerance."""


def solve_evaluation(
    mdp: TabularMDP, pi: torch.Tensor, b: torch.Tensor, *, x0: torch.Tensor | None = None, rtol: float = RTOL
) -> torch.Tensor:
    """Solve ``(I - gamma P_pi) v = b`` (policy evaluation), ``b`` of shape ``(S,)``."""
    return _solve(mdp, pi, b, transpose=False, x0=x0, rtol=rtol)


def solve_adjoint(
    mdp: TabularMDP, pi: torch.Tensor, b: torch.Tensor, *, x0: torch.Tensor | None = None, rtol: float = RTOL
) -> torch.Tensor:
    """Solve ``(I - gamma P_pi)^T w = b`` (the hyper-gradient's adjoint system), ``b`` of shape ``(S,)``."""
    return _solve(mdp, pi, b, transpose=True, x0=x0, rtol=rtol)


def evaluation_operator(
    mdp: TabularMDP, pi: torch.Tensor, *, transpose: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The map ``v -> (I - gamma P_pi) v`` (or its transpose) through products with ``P`` only."""
    if transpose:
        return lambda w: w - mdp.gamma * mdp.pushforward(pi * w.unsqueeze(1))
    return lambda v: v - mdp.gamma * (pi * mdp.expect(v)).sum(dim=1)


def _solve(
    mdp: TabularMDP, pi: torch.Tensor, b: torch.Tensor, *, transpose: bool, x0: torch.Tensor | None, rtol: float
) -> torch.Tensor:
    if mdp.gamma == 0.0:
        return b.clone()
    if not mdp.is_sparse:
        M = torch.eye(mdp.n_states, dtype=b.dtype, device=b.device) - mdp.gamma * mdp.policy_matrix(pi)
        return torch.linalg.solve(M.T if transpose else M, b)
    diag = 1.0 - mdp.gamma * mdp.policy_diagonal(pi)  # same diagonal for M and M^T
    return bicgstab(evaluation_operator(mdp, pi, transpose=transpose), b, diag=diag, x0=x0, rtol=rtol)


def bicgstab(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    *,
    diag: torch.Tensor | None = None,
    x0: torch.Tensor | None = None,
    rtol: float = RTOL,
    max_iter: int = 10_000,
) -> torch.Tensor:
    """Right-preconditioned BiCGSTAB (van der Vorst 1992) for ``M x = b`` with a Jacobi preconditioner.

    Args:
        matvec: ``x -> M x``.
        b: right-hand side.
        diag: the diagonal of ``M`` (Jacobi preconditioner); identity when ``None``.
        x0: starting point (warm start); zero when ``None``.
        rtol: stop when ``|b - M x| <= rtol * |b|``.
        max_iter: most iterations before :class:`LinearSolveError`.
    """
    inv_diag = None if diag is None else 1.0 / diag
    precond = (lambda v: v) if inv_diag is None else (lambda v: inv_diag * v)
    b_norm = torch.linalg.vector_norm(b).item()
    if b_norm == 0.0:
        return torch.zeros_like(b)
    tol = rtol * b_norm
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    restart = True
    for _ in range(max_iter):
        if restart:  # (re)start from the true residual: on breakdown, or when the recursive one drifted
            r = b - matvec(x)
            if torch.linalg.vector_norm(r).item() <= tol:
                return x
            r_hat, p, v = r.clone(), torch.zeros_like(b), torch.zeros_like(b)
            rho_old = alpha = omega = 1.0
            restart = False
        rho = torch.dot(r_hat, r).item()
        if rho == 0.0:
            restart = True
            continue
        beta = (rho / rho_old) * (alpha / omega)
        p = r + beta * (p - omega * v)
        y = precond(p)
        v = matvec(y)
        denominator = torch.dot(r_hat, v).item()
        if denominator == 0.0:  # breakdown: the search direction cancelled to zero; restart from the residual
            restart = True
            continue
        alpha = rho / denominator
        x = x + alpha * y
        s = r - alpha * v
        if torch.linalg.vector_norm(s).item() <= tol:
            restart = True
            continue
        z = precond(s)
        t = matvec(z)
        omega = torch.dot(t, s).item() / torch.dot(t, t).item()
        x = x + omega * z
        r = s - omega * t
        rho_old = rho
        restart = torch.linalg.vector_norm(r).item() <= tol or omega == 0.0
    residual = torch.linalg.vector_norm(b - matvec(x)).item() / b_norm
    raise LinearSolveError(f"BiCGSTAB did not reach rtol={rtol:g} in {max_iter} iterations (residual {residual:.3g})")
