"""Upper-level update rules on the reward network ``r_x``: each ONE scalar surrogate whose gradient is the direction.

A mini-batch holds ``B`` labelled pairs of ``L``-step fragments ``d_1, d_2`` from the follower's own episodes, with
the Bradley-Terry loss of the preference model (:mod:`sobirl.rlhf.preference_model`)

    l_j = -[ y_j log sigmoid(R_x(d_1^j) - R_x(d_2^j)) + (1 - y_j) log sigmoid(R_x(d_2^j) - R_x(d_1^j)) ].

The design math, section 5 (tau = SAC's temperature ``alpha``, since SAC's soft-optimal policy is
``pi ~ exp(Q / alpha)``), gives the hyper-gradient

    grad phi(x) = E[ grad_x l ] + (1/alpha) E[ l * sum_{i=1,2} sum_h ( dQ(s_h^i, a_h^i)/dx - dV(s_h^i)/dx ) ].

Rules (:data:`UPDATE_RULES`), each the gradient of a surrogate (``l`` and the actor's actions held fixed):

- ``"drlhf"`` (Christiano et al. 2017): ``L(x) = mean_j l_j``, the exploitation term alone.
- ``"sobirl"``: ``L(x) = mean_j l_j + (1/alpha) mean_j [ (l_j - lbar_{-j}).detach() * sum_{i,h} D_x(s_h^i, a_h^i) ]``
  with the leave-one-out baseline ``lbar_{-j} = mean_{j' != j} l_j'`` (as the tabular sampled objectives, docs/math.md
  section 8) and an estimate ``D_x`` of ``Q_x - V_x``'s sensitivity (:data:`EXPLORATION_ESTIMATORS`). On-policy
  ``E[sum D] = 0``, so the baseline changes the expectation by nothing and removes the part of the term that only
  raises the rewards of the actor's own actions (``l_j > 0`` always). ``V``'s part uses ``k``
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

- ``"hpgd"`` (Thoma et al. 2024, adapted): HPGD's estimates of the same hyper-gradient, i.e. the ``"sobirl"``
  surrogate with Monte-Carlo sensitivities (``"monte-carlo"`` only) and the leader's advantage (the leave-one-out
  loss above); HPGD's second follower rollout from ``(s_h, a'_h)``, ``a'_h ~ pi``, needs a restartable simulator, so
  ``dQ(s_h, a'_h)/dx`` is its first step ``J(s_h, a'_h)`` (the baseline ``b_x``): the fragments are the only
  rollouts. HPGD's gradient-norm clipping is the trainer's ``grad_clip``.
- ``"pbrl"`` (Shen et al. 2024, adapted): the value penalty ``lambda (V*_x - V^pi_x)`` added to the preference loss,
  with ``pi*`` SAC's current actor (the follower's approximate soft-optimal policy for ``r_x``) and ``pi`` the
  policies that produced the fragments; its gap at each visited state is estimated by the one-step difference
  ``b_x(s_h) - r_x(s_h, a_h)`` (the gamma-propagated terms dropped, as in ``"one-step"``):
  ``L(x) = mean_j l_j + lambda_k mean_{j,i,h} [ b_x(s_h^i) - r_x(s_h^i, a_h^i) ]``. Descending it raises the reward
  of the actions the follower took relative to the actor's current choices, i.e. it pulls ``r_x`` towards rewards
  for which the follower's behaviour is already optimal. ``lambda_k = min(penalty_max, penalty * penalty_growth^k)``
  grows with the reward update ``k`` (:meth:`PreferenceUpdate.penalty_weight`). PBRL's policy step
  ``d_pi f - lambda d_pi V^pi`` tends to the follower's own policy gradient as lambda grows; the follower here is
  SAC on ``r_x``, i.e. that limit.

Scale. Each rule's second term is linear in ``r_x``, and nothing in it fixes ``r_x``'s scale: the term can keep
decreasing by scaling the rewards up (its value has a sign), and the preference loss, which sees the fragments'
actions only, does not hold the rewards of the actor's actions ``b_x``. The follower, however, learns from normalised
(and clamped) rewards, so its policy responds to the reward's shape, not to its scale. ``D_x`` and the penalty are
therefore measured in units of ``sigma_x``, the standard deviation of all ``B 2 L (1 + k)`` rewards of the forward,
differentiated through: ``r_x / sigma_x`` is invariant to ``r_x -> c r_x``, so the second term has no component along
the scale. Measured without it (Pendulum-v1, 30k steps): the term's value grew from ~1 to ~10^4 within 10 reward
updates, the preference loss from 0.1 to 10, and the follower's return collapsed.

Weight. With SAC's temperature falling to ~0.05, ``1/alpha`` reaches ~20 and the exploration term, a sum over the
``2 L`` visited steps, outweighs the preference loss by one to two orders of magnitude; on Pendulum the preference
loss then rose to 5-20 (held-out accuracy ~0.35) within a few updates (docs/rlhf.md). ``exploration_scale`` (1: the
formula) multiplies the term and ``exploration_weight_max`` caps the weight ``c / alpha``; the shipped CPU configs
set both (docs/rlhf.md gives the measurements).

Advantage. ``l_j`` grows without bound as a pair's prediction goes wrong (linearly in the logit), while the
cross-entropy's own gradient stays bounded: once the exploration term has pushed some predictions far off, their
weights ``l_j - lbar_{-j}`` grow, the term's push with them, and the preference loss cannot pull back (measured:
10^-1 to 25 within three reward updates on Pendulum, docs/rlhf.md). ``advantage_clip`` ``c_a`` clips the weights to
``[-c_a, c_a]``: the formula where the fit is sane (``|l_j - lbar_{-j}| <= c_a``), a bounded push where it is not.

All ``B 2 L (1 + k)`` rewards (the fragments' steps and the actor's actions) come from ONE reward-net forward; there
is no per-sample backward and no Jacobian. The exploration term can be kept off for the first ``exploration_warmup``
agent steps (the seed authors: 1e5), during which every rule is ``"drlhf"``. Where the follower's rewards are
clamped (:class:`sobirl.agents.RelabelingReplayBuffer`), the surrogates still differentiate the unclamped ``r_x``, as
the seed authors do.

Discrete actions. With a per-action reward net (:class:`~sobirl.rlhf.ActionRewardNet`) and the actor's
probabilities ``pi(.|s_h)`` (:meth:`PreferenceUpdate.action_probabilities`), the baseline is exact,
``b_x(s_h) = sum_a pi(a|s_h) r_x(s_h, a)``, from the same single forward (every action's reward at once), and
``sigma_x`` is taken over the fragments' rewards and every action's reward at the visited states; everything else is
as above.

Stoc-SoBiRL (design math, section 5) replaces the plain mini-batch gradient by STORM momentum on the reward net's
parameters, :class:`StormMomentum`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from sobirl.rlhf.action_reward_net import ActionRewardNet
from sobirl.rlhf.preference_model import RewardFn, preference_logits, preference_loss
from sobirl.validation import check_choice, check_int, check_range

UPDATE_RULES = ("drlhf", "sobirl", "hpgd", "pbrl")
"""Upper-level rules with a surrogate here (module docstring)."""

EXPLORATION_ESTIMATORS = ("one-step", "monte-carlo")
"""Estimators of ``dQ/dx - dV/dx`` at a visited ``(s_h, a_h)`` (module docstring)."""

RULE_ESTIMATORS: dict[str, tuple[str, ...]] = {
    "drlhf": EXPLORATION_ESTIMATORS,
    "sobirl": EXPLORATION_ESTIMATORS,
    "hpgd": ("monte-carlo",),
    "pbrl": ("one-step",),
}
"""The estimators each rule accepts; the first is its default."""

PairBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""Labelled fragment pairs: observations ``(B, 2, L, *obs_shape)``, actions ``(B, 2, L, *act_shape)``, labels
``(B,)``."""

SCALE_EPS = 1e-8
"""Floor of ``sigma_x``, the batch's reward standard deviation that the second term is measured in."""

ActionSampler = Callable[[torch.Tensor], torch.Tensor]
"""The follower's policy: ``(M, *obs_shape)`` observations to ``(M, *act_shape)`` actions, one draw per row."""

ActionProbabilities = Callable[[torch.Tensor], torch.Tensor]
"""The follower's policy over Discrete actions: ``(M, *obs_shape)`` observations to ``(M, |A|)`` probabilities."""


@dataclass(frozen=True)
class UpdateLoss:
    """One surrogate evaluation.

    Attributes:
        loss: the scalar surrogate; ``loss.backward()`` puts the update direction in the reward net's ``.grad``.
        cross_entropy: ``mean_j l_j``, the preference loss of the batch.
        exploration: the value of the rule's second term (0 when it is off): the exploration term
            ``(1/alpha) mean_j (l_j - lbar_{-j}) sum D_x``, or ``"pbrl"``'s penalty.
        explored: whether the second term was on.
        logits: ``R_x(d_1) - R_x(d_2)`` per pair, ``(B,)``, detached (for ``preference_accuracy``).
    """

    loss: torch.Tensor
    cross_entropy: float
    exploration: float
    explored: bool
    logits: torch.Tensor


@dataclass(frozen=True)
class PreferenceUpdate:
    """A rule's surrogate on a mini-batch of labelled fragment pairs (module docstring).

    Attributes:
        rule: one of :data:`UPDATE_RULES`.
        estimator: one of :data:`EXPLORATION_ESTIMATORS` that the rule accepts (:data:`RULE_ESTIMATORS`); None: the
            rule's default (``"one-step"``; ``"hpgd"``: ``"monte-carlo"``). ``"drlhf"`` ignores it.
        action_samples: ``k >= 1``, actions drawn from the actor per visited state for the baseline ``b_x``.
        gamma: in ``[0, 1]``, the discount of the ``"monte-carlo"`` continuations (SAC's ``gamma``).
        exploration_warmup: agent steps (``>= 0``) before the exploration term is switched on.
        discount: in ``[0, 1]``, the discount of the fragment returns ``R_x`` (the labeller's; 1: plain sums).
        exploration_scale: ``c > 0`` multiplying ``"sobirl"``'s and ``"hpgd"``'s exploration term (1: the formula).
        exploration_weight_max: a cap ``w_max > 0`` on the term's weight ``c / alpha``; None: no cap (the formula).
        advantage_clip: ``c_a > 0``: ``"sobirl"``'s and ``"hpgd"``'s pair weights ``l_j - lbar_{-j}`` clipped to
            ``[-c_a, c_a]``; None: not clipped (the formula).
        penalty: ``"pbrl"``'s initial penalty weight ``lambda_0 > 0``.
        penalty_growth: ``"pbrl"``'s factor ``>= 1`` on lambda per reward update.
        penalty_max: ``"pbrl"``'s cap on lambda, ``>= penalty``.
    """

    rule: str = "sobirl"
    estimator: str | None = None
    action_samples: int = 1
    gamma: float = 0.99
    exploration_warmup: int = 0
    discount: float = 1.0
    exploration_scale: float = 1.0
    exploration_weight_max: float | None = None
    advantage_clip: float | None = None
    penalty: float = 1.0
    penalty_growth: float = 1.05
    penalty_max: float = 100.0

    def __post_init__(self) -> None:
        check_choice("rule", self.rule, UPDATE_RULES)
        accepted = RULE_ESTIMATORS[self.rule]
        if self.estimator is None:
            object.__setattr__(self, "estimator", accepted[0])
        elif self.estimator not in accepted:
            check_choice("estimator", self.estimator, EXPLORATION_ESTIMATORS)
            raise ValueError(f"estimator of rule {self.rule!r} must be one of {list(accepted)}, got {self.estimator!r}")
        check_int("action_samples", self.action_samples, low=1)
        check_range("gamma", self.gamma, low=0.0, high=1.0)
        check_int("exploration_warmup", self.exploration_warmup, low=0)
        check_range("discount", self.discount, low=0.0, high=1.0)
        check_range("exploration_scale", self.exploration_scale, low=0.0, low_open=True)
        for name in ("exploration_weight_max", "advantage_clip"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), low=0.0, low_open=True)
        check_range("penalty", self.penalty, low=0.0, low_open=True)
        check_range("penalty_growth", self.penalty_growth, low=1.0)
        check_range("penalty_max", self.penalty_max, low=self.penalty)

    def explores(self, agent_steps: int) -> bool:
        """Whether the rule's second term (exploration or penalty) is on after ``agent_steps`` follower steps: every
        rule but ``"drlhf"``, past the warm-up."""
        check_int("agent_steps", agent_steps, low=0)
        return self.rule != "drlhf" and agent_steps >= self.exploration_warmup

    def exploration_weight(self, alpha: float) -> float:
        """``"sobirl"``'s and ``"hpgd"``'s weight ``min(c / alpha, w_max)`` on the exploration term at SAC's
        temperature ``alpha > 0`` (``c = exploration_scale``, ``w_max = exploration_weight_max``)."""
        weight = self.exploration_scale / check_range("alpha", alpha, low=0.0, low_open=True)
        return weight if self.exploration_weight_max is None else min(weight, self.exploration_weight_max)

    def penalty_weight(self, update: int) -> float:
        """``"pbrl"``'s ``lambda_k = min(penalty_max, penalty * penalty_growth^k)`` at reward update ``k >= 0``."""
        check_int("update", update, low=0)
        return min(self.penalty_max, self.penalty * self.penalty_growth**update)

    def policy_actions(self, policy: ActionSampler, observations: torch.Tensor) -> torch.Tensor:
        """``k = action_samples`` actions per visited state, ``(B, 2, L, k, *act_shape)``, in ONE policy call on
        the ``B 2 L k`` repeated observations ``(B, 2, L, *obs_shape)``, without a graph. Draw them once per batch:
        :class:`StormMomentum` evaluates the surrogate twice on the same batch."""
        lead = observations.shape[:3]
        rows = observations.reshape(-1, *observations.shape[3:]).repeat_interleave(self.action_samples, dim=0)
        with torch.no_grad():
            actions = policy(rows)
        return actions.reshape(*lead, self.action_samples, *actions.shape[1:])

    @staticmethod
    def action_probabilities(policy: ActionProbabilities, observations: torch.Tensor) -> torch.Tensor:
        """Discrete actions: ``pi(.|s)`` at every visited state, ``(B, 2, L, |A|)``, in ONE policy call on the
        ``B 2 L`` observations ``(B, 2, L, *obs_shape)``, without a graph."""
        with torch.no_grad():
            probs = policy(observations.reshape(-1, *observations.shape[3:]))
        return probs.reshape(*observations.shape[:3], probs.shape[-1])

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
        policy_probs: torch.Tensor | None = None,
        penalty: float | None = None,
        on_policy: PairBatch | None = None,
    ) -> UpdateLoss:
        """The rule's surrogate on ``B`` pairs (module docstring); differentiate ``.loss``.

        The second term is an expectation over fragments of the CURRENT policy (module docstring): on pairs recorded
        under older policies its ``b_x`` part, which the preference loss never constrains, has a persistent
        direction and the reward net's output at the actor's own actions grows without bound. Pass the latest
        pairs as ``on_policy`` to estimate it there and the cross-entropy on the (whole-dataset) batch.

        A normalising :class:`~sobirl.rlhf.RewardNet` in training mode merges every row of the forward into its
        running statistics: with the second term on, the actor's actions too.

        Args:
            reward_net: ``r_x``, called once (in the caller's train/eval mode).
            observations: ``(B, 2, L, *obs_shape)`` fragment observations.
            actions: ``(B, 2, L, *act_shape)`` fragment actions (SAC's scaled actions, as recorded).
            labels: ``(B,)`` probabilities in ``[0, 1]`` that the first fragment is preferred.
            agent_steps: follower steps so far (the warm-up switch, :meth:`explores`).
            alpha: SAC's current temperature ``> 0``; needed while ``"sobirl"``'s or ``"hpgd"``'s term is on.
            policy_actions: Box actions: :meth:`policy_actions` of ``observations``, ``(B, 2, L, k, *act_shape)``;
                needed only while the second term is on; cast to the dtype and device of ``actions``.
            policy_probs: Discrete actions, instead of ``policy_actions``: :meth:`action_probabilities` of
                ``observations``, ``(B, 2, L, |A|)``, with ``reward_net`` an
                :class:`~sobirl.rlhf.ActionRewardNet`: ``b_x(s) = sum_a pi(a|s) r_x(s, a)`` exactly.
            penalty: ``"pbrl"``'s weight ``lambda > 0`` (:meth:`penalty_weight`); needed while its penalty is on.
            on_policy: ``(observations, actions, labels)`` of the ``B'`` pairs the second term is estimated on
                (``policy_actions`` or ``policy_probs`` then belong to them); None: the same batch as the
                cross-entropy, in ONE forward.
        """
        if not self.explores(agent_steps):
            logits = preference_logits(reward_net, observations, actions, discount=self.discount)
            ce = preference_loss(logits, labels)
            return UpdateLoss(loss=ce, cross_entropy=ce.item(), exploration=0.0, explored=False, logits=logits.detach())
        if (policy_actions is None) == (policy_probs is None):
            raise ValueError(
                f"exactly one of policy_actions (Box actions) and policy_probs (Discrete actions) is required while "
                f"the {self.rule} term is on"
            )
        if self.rule == "pbrl":
            if penalty is None:
                raise ValueError("penalty is required while the pbrl penalty is on")
            penalty = check_range("penalty", penalty, low=0.0, low_open=True)
        else:
            if alpha is None:
                raise ValueError(f"alpha is required while the {self.rule} exploration term is on")
            alpha = check_range("alpha", alpha, low=0.0, low_open=True)
        x_obs, x_act, x_labels = (observations, actions, labels) if on_policy is None else on_policy
        if self.rule != "pbrl" and x_obs.shape[0] < 2:
            raise ValueError(f"{self.rule}'s leave-one-out baseline needs a batch of at least 2 pairs")
        if policy_actions is not None:
            shared_forward, outputs = self._sampled_baseline(reward_net, x_obs, x_act, policy_actions)
        else:
            shared_forward, outputs = self._exact_baseline(reward_net, x_obs, policy_probs)
        # the preference model validates the shapes, flattens the steps and sums the returns
        x_logits = preference_logits(shared_forward, x_obs, x_act, discount=self.discount)
        B, _, L = x_obs.shape[:3]
        every, taken, baseline = outputs
        sigma = every.std(correction=0).clamp_min(SCALE_EPS)  # in units of sigma_x
        taken, baseline = (taken / sigma).reshape(B, 2, L), (baseline / sigma).reshape(B, 2, L)
        logits = (
            x_logits
            if on_policy is None
            else preference_logits(reward_net, observations, actions, discount=self.discount)
        )
        ce = preference_loss(logits, labels)
        score = (taken @ self._step_weights(L, taken)).sum(dim=1) - baseline.sum(dim=(1, 2))  # sum_{i,h} D_x, (B,)
        if self.rule == "pbrl":
            exploration = -penalty * score.mean() / (2 * L)  # lambda mean_{j,i,h} (b_x - r_x)
        else:
            weight = binary_cross_entropy_with_logits(x_logits.detach(), x_labels.to(x_logits.dtype), reduction="none")
            weight = (B * weight - weight.sum()) / (B - 1)  # l_j - mean_{j' != j} l_j' (leave-one-out)
            if self.advantage_clip is not None:
                weight = weight.clamp(-self.advantage_clip, self.advantage_clip)
            exploration = self.exploration_weight(alpha) * (weight * score).mean()
        return UpdateLoss(
            loss=ce + exploration,
            cross_entropy=ce.item(),
            exploration=exploration.item(),
            explored=True,
            logits=logits.detach(),
        )

    @staticmethod
    def _sampled_baseline(
        reward_net: RewardFn, observations: torch.Tensor, actions: torch.Tensor, policy_actions: torch.Tensor
    ) -> tuple[RewardFn, list[torch.Tensor]]:
        """A reward function for the preference model that also fills ``[every reward, taken, b_x]`` (flat, per
        visited step) from ONE forward on the fragments' steps and each state's ``k`` policy actions."""
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
            M = len(obs_rows)
            rows = torch.cat([obs_rows, obs_rows.repeat_interleave(k, dim=0)])
            every = reward_net(rows, torch.cat([act_rows, policy_rows]))
            outputs.extend([every, every[:M], every[M:].reshape(M, k).mean(dim=-1)])
            return every[:M]

        return shared_forward, outputs

    @staticmethod
    def _exact_baseline(
        reward_net: RewardFn, observations: torch.Tensor, policy_probs: torch.Tensor
    ) -> tuple[RewardFn, list[torch.Tensor]]:
        """As :meth:`_sampled_baseline` for Discrete actions: every action's reward from ONE forward of a per-action
        net, and ``b_x(s) = sum_a pi(a|s) r_x(s, a)``; ``every reward`` holds the taken and all actions' rewards."""
        if not isinstance(reward_net, ActionRewardNet):
            raise TypeError(
                f"policy_probs need a per-action reward net (sobirl.rlhf.ActionRewardNet), got {type(reward_net)}"
            )
        if policy_probs.shape != (*observations.shape[:3], reward_net.n_actions):
            raise ValueError(
                f"policy_probs must have shape (B, 2, L, n_actions) = "
                f"{(*observations.shape[:3], reward_net.n_actions)}, got {tuple(policy_probs.shape)}"
            )
        outputs: list[torch.Tensor] = []

        def shared_forward(obs_rows: torch.Tensor, act_rows: torch.Tensor) -> torch.Tensor:
            taken, every = reward_net.taken_and_all(obs_rows, act_rows)
            probs = policy_probs.to(every).reshape(every.shape)
            outputs.extend([torch.cat([taken, every.reshape(-1)]), taken, (probs * every).sum(dim=-1)])
            return taken

        return shared_forward, outputs

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
