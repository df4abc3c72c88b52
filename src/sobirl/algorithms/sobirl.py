"""SoBiRL, model-based (docs/math.md, section 4): the lower level solved to a tolerance at every iterate.

Per outer iteration: solve the follower's soft Bellman equation at ``x_k`` to ``inner_tol`` (warm-started from
the previous values), solve the adjoint system for ``w`` (warm-started), form the hyper-gradient with one
vector-Jacobian product and step ``x_{k+1} = x_k - beta * g_k``. With a tight ``inner_tol`` this is gradient
descent on the exact ``phi``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.algorithms.base import MethodConfig, OuterLoop
from sobirl.tabular.hypergrad import hypergradient_info
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.soft import SOLVERS
from sobirl.validation import check_choice, check_range


@dataclass(frozen=True)
class SoBiRLConfig(MethodConfig):
    """Hyper-parameters of model-based SoBiRL.

    Attributes:
        inner_tol: the lower-level tolerance eps (scaled Bellman residual, > 0).
        inner_solver: ``"value-iteration"`` (O(log 1/eps) sweeps, the paper's setting) or
            ``"policy-iteration"`` (Newton; far fewer steps when gamma is close to 1).
    """

    inner_tol: float = 1e-8
    inner_solver: str = "value-iteration"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("inner_tol", self.inner_tol, low=0.0, low_open=True)
        check_choice("inner_solver", self.inner_solver, SOLVERS)


class SoBiRL(OuterLoop):
    """SoBiRL with known transitions (Yang, Gao, Yuan 2025)."""

    name = "sobirl"
    Config = SoBiRLConfig

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: SoBiRLConfig) -> None:
        super().__init__(prob, x0, config)
        self.V: torch.Tensor | None = None
        self.w: torch.Tensor | None = None

    def step(self) -> dict[str, float]:
        cfg: SoBiRLConfig = self.config  # type: ignore[assignment]
        info = hypergradient_info(self.prob, self.x, solver=cfg.inner_solver, tol=cfg.inner_tol, V0=self.V, w0=self.w)
        self.V, self.w = info.solution.V, info.w
        grad_norm = self.descend(info.grad)
        return {
            "objective": info.objective.item(),
            "grad_norm": grad_norm,
            "inner_iterations": float(info.solution.iterations),
        }
