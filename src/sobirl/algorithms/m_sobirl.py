"""M-SoBiRL: model-based, single loop, amortised (docs/math.md, section 4).

Per outer iteration k, warm-starting Q and w:

    A_k = (I - gamma P_{pi_k})^T ,   b_k = U^T (pi_k * G_k)
    w_{k+1} = w_k - zeta * A_k^T (A_k w_k - b_k)          # one gradient step on 1/2 |A w - b|^2
    g_k     = d_x f + J^T [ (pi_k * G_k - Pi_k^T w_{k+1}) / tau ]
    x_{k+1} = x_k - beta * g_k
    Q_{k+1} = T_{x_{k+1}}^N (Q_k),   pi_{k+1} = softmax(Q_{k+1} / tau)

``r_fn`` is evaluated once per iteration (at the new iterate); that evaluation feeds both the N soft
Bellman steps and, at the next iteration, the single vector-Jacobian product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.algorithms.base import MethodConfig, OuterLoop
from sobirl.tabular.hypergrad import adjoint_rhs, as_parameters, assemble_hypergradient, upper_partials
from sobirl.tabular.linear import evaluation_operator
from sobirl.tabular.mdp import DTYPE
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.soft import soft_bellman, soft_policy
from sobirl.validation import check_int, check_range


@dataclass(frozen=True)
class MSoBiRLConfig(MethodConfig):
    """Hyper-parameters of M-SoBiRL (``random_mdp`` suggests the paper's synthetic run: zeta = 0.5).

    Attributes:
        zeta: step size of the least-squares gradient step on w (> 0), or None for the safe step
            ``1 / L_k`` with ``L_k = (1 + gamma)(1 + gamma max_s' sum_s P_pi(s, s')) >= |A_k|_2^2`` (one product
            with ``P^T`` per iteration). A fixed step contracts only when ``zeta < 2 / |A_k|_2^2``; 0.5 suits the
            paper's random MDPs but diverges on grid worlds, whose ``P_pi`` has column sums up to ~3.6.
        inner_steps: N, soft Bellman steps on Q per outer iteration (>= 1).
    """

    zeta: float | None = None
    inner_steps: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.zeta is not None:
            check_range("zeta", self.zeta, low=0.0, low_open=True)
        check_int("inner_steps", self.inner_steps, low=1)


class MSoBiRL(OuterLoop):
    """M-SoBiRL (Yang, Gao, Yuan 2025, Algorithm 1)."""

    name = "m-sobirl"
    Config = MSoBiRLConfig

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: MSoBiRLConfig) -> None:
        super().__init__(prob, x0, config)
        self._reward_at_x()
        zeros = torch.zeros(self.mdp.shape, dtype=DTYPE, device=self.r.device)
        self.Q = soft_bellman(self.mdp, self.r.detach(), zeros, config.inner_steps)
        self.w = torch.zeros(self.mdp.n_states, dtype=DTYPE, device=self.r.device)

    def _reward_at_x(self) -> None:
        self.x = as_parameters(self.x)
        with torch.enable_grad():
            self.r = self.prob.reward(self.x)

    def _lipschitz(self, pi: torch.Tensor) -> float:
        """``(1 + gamma)(1 + gamma |P_pi|_1)``: bounds ``|A|_2^2 <= |A|_1 |A|_inf`` of ``A = (I - gamma P_pi)^T``."""
        column_sums = self.mdp.pushforward(pi)  # sum_s P_pi(s, s') = (P^T pi)(s')
        return (1.0 + self.mdp.gamma) * (1.0 + self.mdp.gamma * column_sums.max().item())

    def step(self) -> dict[str, float]:
        cfg: MSoBiRLConfig = self.config  # type: ignore[assignment]
        pi = soft_policy(self.Q, self.mdp.tau)
        partials = upper_partials(self.prob, self.x, pi)
        A = evaluation_operator(self.mdp, pi, transpose=True)
        A_T = evaluation_operator(self.mdp, pi, transpose=False)
        residual = A(self.w) - adjoint_rhs(self.mdp, pi, partials.G)
        zeta = cfg.zeta if cfg.zeta is not None else 1.0 / self._lipschitz(pi)
        self.w = self.w - zeta * A_T(residual)
        g = assemble_hypergradient(self.mdp, self.x, self.r, pi, partials, self.w)
        grad_norm = self.descend(g)
        self._reward_at_x()
        self.Q = soft_bellman(self.mdp, self.r.detach(), self.Q, cfg.inner_steps)
        return {
            "objective": partials.value.item(),
            "grad_norm": grad_norm,
            "adjoint_residual": torch.linalg.vector_norm(residual).item(),
        }
