"""Upper-level update rules on the reward network ``r_x``: each ONE scalar surrogate whose gradient is the direction.

A mini-batch holds ``B`` labelled pairs of ``L``-step fragments ``d_1, d_2`` from the follower's own episodes, with
the Bradley-Terry loss of the preference model (:mod:`sobirl.rlhf.preference_model`)

    l_j = -[ y_j log sigmoid(R_x(d_1^j) - R_x(d_2^j)) + (1 - y_j) log sigmoid(R_x(d_2^j) - R_x(d_1^j)) ].

The design math, section 5 (tau = SAC's temperature ``alpha``, since SAC's soft-optimal policy is
``pi ~ exp(Q / alpha)``), gives the hyper-gradient

    grad phi(x) = E[ grad_x l ] + (1/alpha) E[ l * sum_{i=1,2} sum_h ( dQ(s_h^i, a_h^i)/dx - dV(s_h^i)/dx ) ].

Rules (:data:`UPDATE_RULES`), each the gradient of a surrogate (``l`` and the actor's actions held fixed):

- ``"drlhf"`` (Christiano et al. 2017): ``L(x) = mean_j l_j``, the exploitation term alone.
- ``"sobirl"``: ``L(x) = mean_j l_j + (1/alpha) mean_j [ l_j.detach() * sum_{i,h} D_x(s_h^i, a_h^i) ]`` with an
  estimate ``D_x`` of ``Q_x - V_x``'s sensitivity (:data:`EXPLORATION_ESTIMATORS`); ``V``'s part uses ``k``
  actions ``a_{h,1..k} ~ pi(.|s_h)`` drawn from SAC's actor per visited state (:meth:`PreferenceUpdate.policy_actions`),
  ``b_x(s_h) = (1/k) sum_m r_x(s_h, a_{h,m})``:

  - ``"one-step"``: ``D_x(s_h, a_h) = r_x(s_h, a_h) - b_x(s_h)``. Its gradient estimates
    ``J(s_h, a_h) - E_{a~pi} J(s_h, a)`` (``J = d r_x/dx``) without bias, which is ``dQ/dx - dV/dx`` minus the
    gamma-propagated terms ``gamma (E_{s'|s_h,a_h} - E_{a~pi, s'|s_h}) dV(s')/dx``: exact at gamma = 0, biased
    otherwise (the seed authors' estimator).
  - ``"monte-carlo"``: ``D_x(s_h, a_h) = sum_{m=h}^{L-1} gamma^(m-h) r_x(s_m, a_m) - b_x(s_h)``: the discounted
    return of the fragment's own continuation minus the one-step baseline. If the fragment's actions follow the
    current ``pi``, its gradient's expectation given ``(s_h, a_h)`` is ``dQ_{L-h}(s_h, a_h)/dx - E_{a~pi} J(s_h, a)``
    with ``Q_n`` the ``n``-step truncated Q. Its bias from ``dQ/dx - dV/dx`` is therefore
    ``+ gamma E_{a~pi, s'|s_h}[dV(s')/dx]`` (the baseline keeps only the first step of ``dV``; it depends on ``s_h``
    alone, yet ``l`` depends on the whole fragment, so it does not average out)
    ``- gamma^(L-h) E[dV(s_L)/dx | s_h, a_h]`` (the continuation stops at the fragment's end, ``s_L`` the state after
    its last step; at ``h = L - 1`` the estimate is the one-step one). It reduces to
    ``"one-step"`` at gamma = 0. Fragments recorded under older policies add an off-policy bias to both estimators.
    Summed over ``h`` the continuations give each step the weight ``c_m = sum_{h<=m} gamma^(m-h)``, so the surrogate
    is ``sum_m c_m r_x(s_m, a_m) - sum_h b_x(s_h)``, linear in the rewards.

All ``B 2 L (1 + k)`` rewards (the fragments' steps and the actor's actions) come from ONE reward-net forward; there
is no per-sample backward and no Jacobian. The exploration term can be kept off for the first ``exploration_warmup``
agent steps (the seed authors: 1e5), during which ``"sobirl"`` is ``"drlhf"``. Where the follower's rewards are
clamped (:class:`sobirl.agents.RelabelingReplayBuffer`), the surrogates still differentiate the unclamped ``r_x``, as
the seed authors do.

Stoc-SoBiRL (design math, section 5) replaces the plain mini-batch gradient by STORM momentum on the reward net's
parameters, :class:`StormMomentum`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from sobirl.rlhf.preference_model import RewardFn, preference_logits, preference_loss
from sobirl.validation import check_choice, check_int, check_range

UPDATE_RULES = ("drlhf", "sobirl")
"""Upper-level rules with a surrogate here (module docstring)."""

EXPLORATION_ESTIMATORS = ("one-step", "monte-carlo")
"""Estimators of ``dQ/dx - dV/dx`` at a visited ``(s_h, a_h)`` for ``"sobirl"`` (module docstring)."""

ActionSampler = Callable[[torch.Tensor], torch.Tensor]
"""The follower's policy: ``(M, *obs_shape)`` observations to ``(M, *act_shape)`` actions, one draw per row."""


@dataclass(frozen=True)
class UpdateLoss:
    """One surrogate evaluation.

    Attributes:
        loss: the scalar surrogate; ``loss.backward()`` puts the update direction in the reward net's ``.grad``.
        cross_entropy: ``mean_j l_j``, the preference loss of the batch.
        exploration: the value of the exploration term ``(1/alpha) mean_j l_j sum D_x`` (0 when it is off).
        explored: whether the exploration term was on.
        logits: ``R_x(d_1) - R_x(d_2)`` per pair, ``(B,)``, detached (for ``preference_accuracy``).
    """

    loss: torch.Tensor
    cross_entropy: float
    exploration: float
    explored: bool
    logits: torch.Tensor


@dataclass(frozen=True)
class PreferenceUpdate:
    """The ``drlhf`` or ``sobirl`` surrogate on a mini-batch of labelled fragment pairs (module docstring).

    Attributes:
        rule: one of :data:`UPDATE_RULES`.
        estimator: one of :data:`EXPLORATION_ESTIMATORS` (``"sobirl"`` only).
        action_samples: ``k >= 1``, actions drawn from the actor per visited state for the baseline ``b_x``.
        gamma: in ``[0, 1]``, the discount of the ``"monte-carlo"`` continuations (SAC's ``gamma``).
        exploration_warmup: agent steps (``>= 0``) before the exploration term is switched on.
        discount: in ``[0, 1]``, the discount of the fragment returns ``R_x`` (the labeller's; 1: plain sums).
    """

    rule: str = "sobirl"
    estimator: str = "one-step"
    action_samples: int = 8
    gamma: float = 0.99
    exploration_warmup: int = 0
    discount: float = 1.0

    def __post_init__(self) -> None:
        check_choice("rule", self.rule, UPDATE_RULES)
        check_choice("estimator", self.estimator, EXPLORATION_ESTIMATORS)
        check_int("action_samples", self.action_samples, low=1)
        check_range("gamma", self.gamma, low=0.0, high=1.0)
        check_int("exploration_warmup", self.exploration_warmup, low=0)
        check_range("discount", self.discount, low=0.0, high=1.0)

    def explores(self, agent_steps: int) -> bool:
        """Whether the exploration term is on after ``agent_steps`` follower steps (``"sobirl"`` past the warm-up)."""
        check_int("agent_steps", agent_steps, low=0)
        return self.rule == "sobirl" and agent_steps >= self.exploration_warmup

    def policy_actions(self, policy: ActionSampler, observations: torch.Tensor) -> torch.Tensor:
        """``k = action_samples`` actions per visited state, ``(B, 2, L, k, *act_shape)``, in ONE policy call on
        the ``B 2 L k`` repeated observations ``(B, 2, L, *obs_shape)``, without a graph. Draw them once per batch:
        :class:`StormMomentum` evaluates the surrogate twice on the same batch."""
        lead = observations.shape[:3]
        rows = observations.reshape(-1, *observations.shape[3:]).repeat_interleave(self.action_samples, dim=0)
        with torch.no_grad():
            actions = policy(rows)
        return actions.reshape(*lead, self.action_samples, *actions.shape[1:])

    def surrogate(
        self,
        reward_net: RewardFn,
        observations: torch.Tensor,
        actions: torch.Tensor,
        labels: torch.Tensor,
        *,
        agent_steps: int,
        alpha: float | None = None,
        policy_actions: torch.Tensor | None = None,
    ) -> UpdateLoss:
        """The rule's surrogate on ``B`` pairs (module docstring); differentiate ``.loss``.

        A normalising :class:`~sobirl.rlhf.RewardNet` in training mode merges every row of the forward into its
        running statistics: with the exploration term on, the actor's actions too.

        Args:
            reward_net: ``r_x``, called once (in the caller's train/eval mode).
            observations: ``(B, 2, L, *obs_shape)`` fragment observations.
            actions: ``(B, 2, L, *act_shape)`` fragment actions (SAC's scaled actions, as recorded).
            labels: ``(B,)`` probabilities in ``[0, 1]`` that the first fragment is preferred.
            agent_steps: follower steps so far (the warm-up switch, :meth:`explores`).
            alpha: SAC's current temperature ``> 0``; needed only while the exploration term is on.
            policy_actions: :meth:`policy_actions` of ``observations``, ``(B, 2, L, k, *act_shape)``; needed only
                while the exploration term is on; cast to the dtype and device of ``actions``.
        """
        if not self.explores(agent_steps):
            logits = preference_logits(reward_net, observations, actions, discount=self.discount)
            ce = preference_loss(logits, labels)
            return UpdateLoss(loss=ce, cross_entropy=ce.item(), exploration=0.0, explored=False, logits=logits.detach())
        if alpha is None or policy_actions is None:
            raise ValueError("alpha and policy_actions are required while the sobirl exploration term is on")
        alpha = check_range("alpha", alpha, low=0.0, low_open=True)
        if policy_actions.shape[:3] != observations.shape[:3] or policy_actions.dim() != actions.dim() + 1:
            raise ValueError(
                "policy_actions must have shape (B, 2, L, k, *act_shape) with (B, 2, L) = "
                f"{tuple(observations.shape[:3])} and act_shape = {tuple(actions.shape[3:])}, "
                f"got {tuple(policy_actions.shape)}"
            )
        k = policy_actions.shape[3]
        policy_rows = policy_actions.to(actions).reshape(-1, *policy_actions.shape[4:])
        outputs: list[torch.Tensor] = []

        def shared_forward(obs_rows: torch.Tensor, act_rows: torch.Tensor) -> torch.Tensor:
            """ONE reward-net forward: the fragments' steps, then each state's ``k`` policy actions."""
            rows = torch.cat([obs_rows, obs_rows.repeat_interleave(k, dim=0)])
            outputs.append(reward_net(rows, torch.cat([act_rows, policy_rows])))
            return outputs[0][: len(obs_rows)]

        # the preference model validates the shapes, flattens the steps and sums the returns
        logits = preference_logits(shared_forward, observations, actions, discount=self.discount)
        B, _, L = observations.shape[:3]
        M = B * 2 * L
        taken, baseline = outputs[0][:M].reshape(B, 2, L), outputs[0][M:].reshape(B, 2, L, k).mean(dim=-1)
        ce = preference_loss(logits, labels)
        per_pair = binary_cross_entropy_with_logits(logits.detach(), labels.to(logits.dtype), reduction="none")
        score = (taken @ self._step_weights(L, taken)).sum(dim=1) - baseline.sum(dim=(1, 2))
        exploration = (per_pair * score).mean() / alpha
        return UpdateLoss(
            loss=ce + exploration,
            cross_entropy=ce.item(),
            exploration=exploration.item(),
            explored=True,
            logits=logits.detach(),
        )

    def _step_weights(self, L: int, like: torch.Tensor) -> torch.Tensor:
        """``c_m``, ``(L,)``: 1 for ``"one-step"``, ``sum_{h<=m} gamma^(m-h)`` for ``"monte-carlo"``."""
        if self.estimator == "one-step":
            return torch.ones(L, dtype=like.dtype, device=like.device)
        return torch.cumsum(self.gamma ** torch.arange(L, dtype=like.dtype, device=like.device), dim=0)


class StormMomentum:
    """STORM momentum on a reward net's parameters (Stoc-SoBiRL; design math, section 5), for any torch optimiser.

    With ``g(x; B)`` the gradient of a surrogate on mini-batch ``B`` at parameters ``x``:

        h_k = g(x_k; B_k) + (1 - eta) (h_{k-1} - g(x_{k-1}; B_k)),      h_0 = g(x_0; B_0),

    the SAME batch ``B_k`` at both points. :meth:`step` evaluates ``closure`` at the current parameters ``x_k`` and,
    after the first step, at the previous ones ``x_{k-1}`` (a copy is kept; the parameters are restored in place),
    then sets each parameter's ``.grad`` to ``h_k``; ``optimizer.step()`` then moves ``x`` (plain SGD:
    ``x_{k+1} = x_k - beta h_k``). Call it once per optimiser step, nothing else changing the parameters in between.

    ``closure`` must recompute the surrogate on the same batch every time it is called within a step: same pairs,
    labels, ``alpha`` and policy actions (draw them once, :meth:`PreferenceUpdate.policy_actions`). Buffers (a
    normalising reward net's statistics) are not swapped: in training mode both calls update them.

    Args:
        params: the parameters (e.g. ``reward_net.parameters()``); those a surrogate does not reach get zero.
        eta: the momentum weight in ``(0, 1]`` (1: the plain mini-batch gradient); :meth:`step` may override it.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], *, eta: float = 0.5) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("params must hold at least one parameter")
        self.eta = check_range("eta", eta, low=0.0, high=1.0, low_open=True)
        self.h: list[torch.Tensor] | None = None
        """``h_k`` per parameter after a step; None before the first."""
        self._previous: list[torch.Tensor] | None = None

    def step(self, closure: Callable[[], torch.Tensor], *, eta: float | None = None) -> torch.Tensor:
        """Compute ``h_k`` (class docstring), set it as the parameters' ``.grad``; return the surrogate at ``x_k``
        (detached). ``eta``: this step's weight in ``(0, 1]`` (a schedule ``eta_k``), else the constructor's."""
        eta = self.eta if eta is None else check_range("eta", eta, low=0.0, high=1.0, low_open=True)
        loss = closure()
        g_new = self._gradient(loss)
        if self.h is None or self._previous is None:
            h = g_new
        else:
            current = [p.detach().clone() for p in self.params]
            self._load(self._previous)
            try:
                g_old = self._gradient(closure())
            finally:
                self._load(current)
            h = [gn + (1.0 - eta) * (hp - go) for gn, hp, go in zip(g_new, self.h, g_old, strict=True)]
        self.h = h
        self._previous = [p.detach().clone() for p in self.params]
        for p, hk in zip(self.params, h, strict=True):
            p.grad = hk.clone()
        return loss.detach()

    def _gradient(self, loss: torch.Tensor) -> list[torch.Tensor]:
        """``d loss / d params``, zero for the parameters the loss does not reach; ``.grad`` is left alone."""
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads, strict=True)]

    def _load(self, values: list[torch.Tensor]) -> None:
        """Copy ``values`` into the parameters in place (the optimiser keeps referring to the same tensors)."""
        with torch.no_grad():
            for p, v in zip(self.params, values, strict=True):
                p.copy_(v)
