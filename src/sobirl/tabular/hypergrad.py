"""The exact hyper-gradient of a tabular bilevel problem (docs/math.md, section 3).

    w  solves  (I - gamma P_pi)^T w = U^T u,          u = pi * G,   G = df/dpi
    grad phi(x) = d_x f(x, pi) + J^T [ (u - Pi^T w) / tau ],   J = d r_x / d x

Cost of one hyper-gradient given the follower's solution: one backward pass through ``f`` (for ``G`` and
``d_x f``), one linear solve with ``(I - gamma P_pi)^T`` and ONE vector-Jacobian product through ``r_x``.
The pieces are public because M-SoBiRL (section 4) reuses them with an approximate ``w``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.tabular.linear import solve_adjoint
from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.soft import SoftSolution, solve_lower
from sobirl.validation import check_parameters

TOL = 1e-12
"""Default lower-level tolerance of the exact oracle: near float64 rounding, cheap with policy iteration."""


@dataclass(frozen=True)
class UpperPartials:
    """``f(x, pi)`` and its partial derivatives at a fixed policy: ``d_x f`` (n,) and ``G = d_pi f`` (S, A)."""

    value: torch.Tensor
    df_dx: torch.Tensor
    G: torch.Tensor


@dataclass(frozen=True)
class HypergradientInfo:
    """Everything one exact hyper-gradient computed: the gradient, ``phi(x)``, the adjoint ``w`` and the
    follower's solution (reusable as a warm start)."""

    grad: torch.Tensor
    objective: torch.Tensor
    w: torch.Tensor
    solution: SoftSolution


def as_parameters(x: torch.Tensor) -> torch.Tensor:
    """Validate leader parameters and return a float64 leaf that requires grad."""
    check_parameters("x", x)
    return x.detach().to(DTYPE).requires_grad_(True)


def lower_level(
    prob: BilevelProblem,
    x: torch.Tensor,
    *,
    solver: str = "policy-iteration",
    tol: float = TOL,
    V0: torch.Tensor | None = None,
) -> SoftSolution:
    """The follower's soft-optimal solution ``pi*(x)`` (with V and Q) for reward ``r_x``."""
    with torch.no_grad():
        r = prob.reward(as_parameters(x).detach())
    return solve_lower(prob.mdp, r, solver=solver, tol=tol, V0=V0)


def hyperobjective(
    prob: BilevelProblem, x: torch.Tensor, *, solver: str = "policy-iteration", tol: float = TOL
) -> torch.Tensor:
    """``phi(x) = f(x, pi*(x))`` as a 0-dim float64 tensor (no graph)."""
    pi = lower_level(prob, x, solver=solver, tol=tol).pi
    with torch.no_grad():
        return prob.upper(as_parameters(x).detach(), pi)


def hypergradient(
    prob: BilevelProblem,
    x: torch.Tensor,
    *,
    solution: SoftSolution | None = None,
    solver: str = "policy-iteration",
    tol: float = TOL,
) -> torch.Tensor:
    """The exact ``grad phi(x)``, a float64 tensor shaped like ``x``.

    Args:
        prob: the bilevel problem.
        x: leader parameters, 1-D floating tensor.
        solution: the follower's solution at ``x`` if already computed (skips the lower-level solve).
        solver: lower-level solver when ``solution`` is None (``"policy-iteration"`` or ``"value-iteration"``).
        tol: its tolerance (scaled Bellman residual).
    """
    return hypergradient_info(prob, x, solution=solution, solver=solver, tol=tol).grad


def hypergradient_info(
    prob: BilevelProblem,
    x: torch.Tensor,
    *,
    solution: SoftSolution | None = None,
    solver: str = "policy-iteration",
    tol: float = TOL,
    V0: torch.Tensor | None = None,
    w0: torch.Tensor | None = None,
) -> HypergradientInfo:
    """:func:`hypergradient` with its by-products.

    ``V0`` warm-starts the lower-level solve (when ``solution`` is None) and ``w0`` the iterative adjoint
    solve; ``r_fn`` is called once either way.
    """
    x = as_parameters(x)
    r = prob.reward(x)
    if solution is None:
        solution = solve_lower(prob.mdp, r.detach(), solver=solver, tol=tol, V0=V0)
    pi = solution.pi
    partials = upper_partials(prob, x, pi)
    w = solve_adjoint(prob.mdp, pi, adjoint_rhs(prob.mdp, pi, partials.G), x0=w0)
    grad = assemble_hypergradient(prob.mdp, x, r, pi, partials, w)
    return HypergradientInfo(grad=grad, objective=partials.value, w=w, solution=solution)


def upper_partials(prob: BilevelProblem, x: torch.Tensor, pi: torch.Tensor) -> UpperPartials:
    """``f``, ``d_x f`` and ``G = d_pi f`` at ``(x, pi)`` in one backward pass through ``f``."""
    x_ = x.detach().requires_grad_(True)
    pi_ = pi.detach().requires_grad_(True)
    with torch.enable_grad():
        f = prob.upper(x_, pi_)
        df_dx, G = torch.autograd.grad(f, (x_, pi_), allow_unused=True)
    df_dx = torch.zeros_like(x_) if df_dx is None else df_dx
    G = torch.zeros_like(pi_) if G is None else G
    return UpperPartials(value=f.detach(), df_dx=df_dx.to(DTYPE), G=G.to(DTYPE))


def adjoint_rhs(mdp: TabularMDP, pi: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """``U^T u`` with ``u = pi * G``: ``(U^T u)(s') = sum_a u(s', a) - gamma sum_{s,a} P(s'|s,a) u(s,a)``."""
    u = pi * G
    return u.sum(dim=1) - mdp.gamma * mdp.pushforward(u)


def assemble_hypergradient(
    mdp: TabularMDP,
    x: torch.Tensor,
    r: torch.Tensor,
    pi: torch.Tensor,
    partials: UpperPartials,
    w: torch.Tensor,
) -> torch.Tensor:
    """``d_x f + J^T [(pi * G - pi * w) / tau]``: the ONE vector-Jacobian product through ``r_x``.

    ``r`` must be ``r_fn(x)`` evaluated with the autograd graph to the leaf ``x``.
    """
    cotangent = pi * (partials.G - w.unsqueeze(1)) / mdp.tau
    return partials.df_dx + reward_vjp(r, x, cotangent)


def reward_vjp(r: torch.Tensor, x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``J^T W = sum_{s,a} W(s, a) d r_x(s, a)/dx``: ONE backward pass through ``r = r_fn(x)`` (graph to leaf ``x``).

    Zero when the reward does not depend on ``x``.
    """
    if not r.requires_grad:
        return torch.zeros_like(x)
    (vjp,) = torch.autograd.grad(r, x, grad_outputs=W.to(r.dtype), allow_unused=True)
    return torch.zeros_like(x) if vjp is None else vjp
