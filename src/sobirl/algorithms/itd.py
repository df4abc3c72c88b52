"""``itd``: iterative differentiation through N unrolled soft Bellman steps (docs/math.md, section 6).

Per outer iteration k, from a detached warm start ``Q_0`` (the previous iteration's ``Q_N``, or zeros):

    Q_{j+1} = r_x + gamma P (tau logsumexp(Q_j / tau)),   j = 0, ..., N-1   (graph to x kept)
    pi_N    = softmax(Q_N / tau)
    g_k     = d/dx f(x, pi_N(x))                                            (ONE backward pass)
    x_{k+1} = x_k - beta g_k

Only the N steps carry the dependence on x: ``Q_0`` is a constant. The unrolled derivative differs from the
exact hyper-gradient (section 3) by the error of ``Q_N`` plus a term that contracts like ``gamma^N``, so from
a converged ``Q_0`` it reaches the exact value geometrically in N. ``P`` enters only through
``TabularMDP.expect``, which autograd differentiates for dense and sparse ``P`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.algorithms.base import MethodConfig, OuterLoop
from sobirl.tabular.hypergrad import as_parameters
from sobirl.tabular.mdp import DTYPE
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.soft import check_reward, soft_bellman, soft_policy
from sobirl.validation import check_int


def itd_gradient(
    prob: BilevelProblem, x: torch.Tensor, Q0: torch.Tensor | None, steps: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ITD hyper-gradient estimate: autograd through ``steps`` soft Bellman steps from ``Q0``.

    Args:
        prob: the bilevel problem.
        x: leader parameters, 1-D floating tensor.
        Q0: the starting Q table ``(S, A)``, treated as a constant (detached); zeros when None.
        steps: N, the number of unrolled soft Bellman steps (>= 1).

    Returns:
        ``(grad, objective, Q_N)``: ``d f(x, pi_N(x)) / dx`` shaped like ``x``, ``f(x, pi_N)`` (0-dim) and the
        final Q table (detached, the next warm start).
    """
    check_int("steps", steps, low=1)
    x = as_parameters(x)
    mdp = prob.mdp
    Q0 = torch.zeros(mdp.shape, dtype=DTYPE, device=x.device) if Q0 is None else check_reward(mdp, Q0, name="Q0")
    with torch.enable_grad():
        Q = soft_bellman(mdp, prob.reward(x), Q0.detach(), steps)
        f = prob.upper(x, soft_policy(Q, mdp.tau))
        # f may not depend on x at all (constant r_x and f free of x): its gradient is then zero.
        grad = torch.autograd.grad(f, x, allow_unused=True)[0] if f.requires_grad else None
    grad = torch.zeros_like(x) if grad is None else grad
    return grad.detach(), f.detach(), Q.detach()


@dataclass(frozen=True)
class ITDConfig(MethodConfig):
    """Hyper-parameters of iterative differentiation.

    Attributes:
        unroll_steps: N, soft Bellman steps differentiated through per outer iteration (>= 1).
        warm_start: start each unroll from the previous iteration's ``Q_N`` (True) or from zeros (False).
    """

    unroll_steps: int = 10
    warm_start: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("unroll_steps", self.unroll_steps, low=1)
        if not isinstance(self.warm_start, bool):
            raise TypeError(f"warm_start must be a bool (True or False), got {type(self.warm_start).__name__}")


class ITD(OuterLoop):
    """Gradient descent along :func:`itd_gradient` (the ITD baseline of section 6)."""

    name = "itd"
    Config = ITDConfig

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: ITDConfig) -> None:
        super().__init__(prob, x0, config)
        self.Q: torch.Tensor | None = None

    def step(self) -> dict[str, float]:
        cfg: ITDConfig = self.config  # type: ignore[assignment]
        grad, objective, Q_N = itd_gradient(self.prob, self.x, self.Q, cfg.unroll_steps)
        if cfg.warm_start:
            self.Q = Q_N
        grad_norm = self.descend(grad)
        return {
            "objective": objective.item(),
            "grad_norm": grad_norm,
            "unroll_steps": float(cfg.unroll_steps),
        }
