"""``zero-order``: gradient descent on the Gaussian smoothing of phi (docs/math.md, section 6).

    phi_delta(x) = E_{u ~ N(0, I)} [ phi(x + delta u) ]
    g = (1/m) sum_i [ (phi(x + delta u_i) - phi(x - delta u_i)) / (2 delta) ] u_i,   u_i ~ N(0, I)
    x_{k+1} = x_k - beta g

The antithetic (two-point) estimator is unbiased for ``grad phi_delta``, which differs from ``grad phi`` by
``O(delta^2)``. Each ``phi`` value is exact: a lower-level solve to ``tol`` (soft policy iteration) and one
evaluation of ``f``. Only values of ``phi`` are used, never its gradient: the method is the derivative-free
reference, paying ``2m + 1`` lower-level solves per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.algorithms.base import MethodConfig, OuterLoop
from sobirl.tabular.hypergrad import as_parameters, lower_level
from sobirl.tabular.mdp import DTYPE
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.soft import SoftSolution
from sobirl.validation import check_int, check_range


def zero_order_gradient(
    prob: BilevelProblem,
    x: torch.Tensor,
    *,
    samples: int,
    delta: float,
    generator: torch.Generator,
    tol: float = 1e-10,
    solution: SoftSolution | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The two-point Gaussian-smoothing estimate of ``grad phi(x)`` from ``2 * samples`` values of ``phi``.

    Args:
        prob: the bilevel problem.
        x: leader parameters, 1-D floating tensor.
        samples: m, the number of directions ``u_i ~ N(0, I)`` (>= 1).
        delta: smoothing radius (> 0).
        generator: draws the directions (one ``(m, n)`` draw per call), on ``x``'s device.
        tol: lower-level tolerance (scaled Bellman residual, > 0) of every ``phi`` evaluation.
        solution: the follower's solution at ``x`` if already computed (skips that solve); its ``V`` warm-starts
            the solves at the perturbed points either way.

    Returns:
        ``(grad, objective, solves)``: the estimate shaped like ``x``, ``phi(x)`` (0-dim) and the number of
        lower-level solves this call made (``2m``, plus one when ``solution`` is None).
    """
    check_int("samples", samples, low=1)
    check_range("delta", delta, low=0.0, low_open=True)
    check_range("tol", tol, low=0.0, low_open=True)
    x = as_parameters(x).detach()
    solves = 2 * samples
    if solution is None:
        solution = lower_level(prob, x, tol=tol)
        solves += 1
    U = torch.randn(samples, x.numel(), generator=generator, dtype=DTYPE, device=x.device)
    points = torch.cat([x + delta * U, x - delta * U])  # (2m, n): rows i and m + i are the antithetic pair
    # Every phi(x +- delta u_i) is its own fixed point with its own iteration count, so the solves cannot
    # share one batched iteration; warm-starting each from V*(x), O(delta) away, leaves one or two Newton steps each.
    with torch.no_grad():
        phis = torch.stack([prob.upper(p, lower_level(prob, p, tol=tol, V0=solution.V).pi) for p in points.unbind()])
        objective = prob.upper(x, solution.pi)
    quotients = (phis[:samples] - phis[samples:]) / (2 * delta)
    return quotients @ U / samples, objective, solves


@dataclass(frozen=True)
class ZeroOrderConfig(MethodConfig):
    """Hyper-parameters of zero-order (Gaussian smoothing) descent.

    Attributes:
        delta: smoothing radius (> 0). The bias of ``grad phi_delta`` is ``O(delta^2)``, while each two-point
            quotient amplifies the lower-level error in ``phi`` (about ``tol``) by ``1 / delta``.
        samples: m, directions per iteration (>= 1); each costs two lower-level solves.
        seed: seed of the method's own generator of directions (integer >= 0): runs are reproducible.
        tol: lower-level tolerance (scaled Bellman residual, > 0).
    """

    delta: float = 1e-4
    samples: int = 20
    seed: int = 0
    tol: float = 1e-10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("delta", self.delta, low=0.0, low_open=True)
        check_int("samples", self.samples, low=1)
        check_int("seed", self.seed, low=0)
        check_range("tol", self.tol, low=0.0, low_open=True)


class ZeroOrder(OuterLoop):
    """Gradient descent along :func:`zero_order_gradient` (the zero-order baseline of section 6)."""

    name = "zero-order"
    Config = ZeroOrderConfig

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: ZeroOrderConfig) -> None:
        super().__init__(prob, x0, config)
        self.generator = torch.Generator(device=self.x.device).manual_seed(config.seed)
        self.V: torch.Tensor | None = None
        self.oracle_calls = 0

    def step(self) -> dict[str, float]:
        cfg: ZeroOrderConfig = self.config  # type: ignore[assignment]
        solution = lower_level(self.prob, self.x, tol=cfg.tol, V0=self.V)
        self.V = solution.V
        grad, objective, solves = zero_order_gradient(
            self.prob,
            self.x,
            samples=cfg.samples,
            delta=cfg.delta,
            generator=self.generator,
            tol=cfg.tol,
            solution=solution,
        )
        self.oracle_calls += solves + 1
        grad_norm = self.descend(grad)
        return {
            "objective": objective.item(),
            "grad_norm": grad_norm,
            "oracle_calls": float(self.oracle_calls),
        }
