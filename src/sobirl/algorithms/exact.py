"""``exact``: gradient descent on phi with the exact hyper-gradient (docs/math.md, section 3); the reference.

Each iteration solves the follower's problem to near rounding with soft policy iteration (warm-started), solves
the adjoint system exactly, and steps ``x_{k+1} = x_k - beta grad phi(x_k)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.algorithms.base import MethodConfig, OuterLoop
from sobirl.tabular.hypergrad import TOL, hypergradient_info
from sobirl.tabular.problem import BilevelProblem
from sobirl.validation import check_range


@dataclass(frozen=True)
class ExactConfig(MethodConfig):
    """Hyper-parameters of exact hyper-gradient descent.

    Attributes:
        tol: lower-level tolerance (scaled Bellman residual, > 0); the default is near float64 rounding.
    """

    tol: float = TOL

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("tol", self.tol, low=0.0, low_open=True)


class Exact(OuterLoop):
    """Gradient descent with :func:`sobirl.tabular.hypergradient`."""

    name = "exact"
    Config = ExactConfig

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: ExactConfig) -> None:
        super().__init__(prob, x0, config)
        self.V: torch.Tensor | None = None

    def step(self) -> dict[str, float]:
        cfg: ExactConfig = self.config  # type: ignore[assignment]
        info = hypergradient_info(self.prob, self.x, solver="policy-iteration", tol=cfg.tol, V0=self.V)
        self.V = info.solution.V
        return {"objective": info.objective.item(), "grad_norm": self.descend(info.grad)}
