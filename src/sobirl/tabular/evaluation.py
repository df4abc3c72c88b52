"""Policy evaluation for an arbitrary policy, differentiable in the policy and the reward (docs/math.md, 1-3).

    V^pi = (I - gamma P_pi)^{-1} c_pi,    c_pi(s) = sum_a pi(a|s) r(s, a)  [ + tau H(pi(.|s)) ]

Upper objectives built from values (the leader's own value in reward shaping and incentive design, the
penalty of PBRL) need ``V^pi`` as a differentiable function of ``pi``. With a dense ``P`` this is plain
``torch.linalg.solve`` (differentiable to any order, as PARL's Hessian-vector products need); with a sparse
``P`` a custom autograd function whose backward pass is ONE adjoint solve:

    dL/dc_pi = lambda,   dL/dpi(a|s) = gamma lambda(s) (P V)(s, a),   lambda = (I - gamma P_pi)^{-T} dL/dV
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sobirl.tabular.linear import solve_adjoint, solve_evaluation
from sobirl.tabular.mdp import TabularMDP


def policy_value(mdp: TabularMDP, pi: torch.Tensor, r: torch.Tensor, *, entropy: bool = False) -> torch.Tensor:
    """``V^pi`` (shape ``(S,)``) of policy ``pi`` for reward table ``r``, differentiable in ``pi`` and ``r``.

    Args:
        mdp: the MDP (its ``gamma``, and ``tau`` when ``entropy``).
        pi: policy ``(S, A)``, rows summing to 1.
        r: reward table ``(S, A)``.
        entropy: add the follower's entropy bonus ``tau H(pi(.|s))`` to each step (the soft value).
    """
    c = (pi * r).sum(dim=1)
    if entropy:
        # pi log pi with 0 log 0 = 0 and a finite gradient where pi underflowed to 0 (xlogy's gradient is NaN there)
        positive = pi > 0
        c = c - mdp.tau * torch.where(positive, pi * torch.log(torch.where(positive, pi, 1.0)), 0.0).sum(dim=1)
    if mdp.is_sparse:
        return _SparseEvaluation.apply(pi, c, mdp)
    M = torch.eye(mdp.n_states, dtype=c.dtype, device=c.device) - mdp.gamma * mdp.policy_matrix(pi)
    return torch.linalg.solve(M, c)


class _SparseEvaluation(torch.autograd.Function):
    """``V = (I - gamma P_pi)^{-1} c`` with products by a sparse ``P``; first-order differentiable."""

    @staticmethod
    def forward(pi: torch.Tensor, c: torch.Tensor, mdp: TabularMDP) -> torch.Tensor:  # type: ignore[override]
        return solve_evaluation(mdp, pi.detach(), c.detach())

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pi, _, mdp = inputs
        ctx.mdp = mdp
        ctx.save_for_backward(pi, output)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        pi, V = ctx.saved_tensors
        mdp: TabularMDP = ctx.mdp
        lam = solve_adjoint(mdp, pi, grad_V)
        grad_pi = mdp.gamma * lam.unsqueeze(1) * mdp.expect(V)
        return grad_pi, lam, None


class LeaderValue:
    """The upper objective of reward shaping and incentive design: ``f(x, pi) = -E_{s ~ rho}[V_L^pi(s)]``.

    The leader collects its own reward ``r_L(x)`` (an ``(S, A)`` table, possibly depending on ``x``) while the
    follower plays ``pi``, with the follower's transitions and discount and no entropy bonus. ``f`` is the
    NEGATED value, so minimising ``phi`` maximises the leader's value. Stochastic methods (HPGD) recognise this
    objective by its type and use ``leader_reward`` directly.

    Args:
        mdp: the follower's MDP (transitions, gamma, terminal states).
        leader_reward: ``r_L(x) -> (S, A)`` tensor, differentiable in ``x``.
        rho: where the leader's value is measured, ``(S,)``; the MDP's ``rho`` when None.
    """

    def __init__(
        self,
        mdp: TabularMDP,
        leader_reward: Callable[[torch.Tensor], torch.Tensor],
        rho: torch.Tensor | None = None,
    ) -> None:
        self.mdp = mdp
        self.leader_reward = leader_reward
        self.rho = mdp.rho if rho is None else TabularMDP.check_distribution("rho", rho, mdp.n_states)

    def __call__(self, x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        return -(self.rho @ policy_value(self.mdp, pi, self.leader_reward(x)))
