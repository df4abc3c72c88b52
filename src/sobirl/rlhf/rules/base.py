"""The contract every upper-level update rule on the reward net follows (one class per rule, :data:`RULES`).

A rule turns a mini-batch of ``B`` labelled pairs of ``L``-step fragments into ONE scalar surrogate whose gradient is
the update direction of the reward net ``r_x`` (no per-sample backward, no Jacobian). Its first term is always the
preference loss ``mean_j l_j`` of the batch (:mod:`sobirl.rlhf.preference_model`); a rule with a second term
(exploration, penalty) estimates it on :class:`Visits`: pairs of the current follower with the follower's actions at
their states, drawn once per step (STORM evaluates the surrogate twice on them).

What a rule knows of the follower is passed in as a :class:`Follower`; what the rule needs of its own settings is its
frozen, validated ``Config``. Adding a rule is one file with a subclass of :class:`UpdateRule` and one line in
:data:`sobirl.rlhf.rules.RULES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch

from sobirl.agents.types import StepRewardFn
from sobirl.rlhf.preference_model import preference_logits, preference_loss
from sobirl.rlhf.visits import Follower, PairBatch, Visits
from sobirl.validation import check_int, check_range


@dataclass(frozen=True)
class UpdateLoss:
    """One surrogate evaluation.

    Attributes:
        loss: the scalar surrogate; ``loss.backward()`` puts the update direction in the reward net's ``.grad``.
        cross_entropy: ``mean_j l_j``, the preference loss of the batch.
        second_term: the value of the rule's second term (0 when it is off).
        explored: whether the second term was on.
        logits: ``R_x(d_1) - R_x(d_2)`` per pair of the batch, ``(B,)``, detached.
    """

    loss: torch.Tensor
    cross_entropy: float
    second_term: float
    explored: bool
    logits: torch.Tensor


@dataclass(frozen=True)
class RuleConfig:
    """Settings every rule has.

    Attributes:
        exploration_warmup: agent steps (``>= 0``) before the second term is switched on.
        discount: in ``[0, 1]``, the discount of the fragment returns ``R_x`` (the labeller's; 1: plain sums).
        grad_clip: clip the update direction to this norm before each step (HPGD's clipping; any rule); None: not.
        random_response: ``eps`` in ``[0, 1)`` of the preference model ``P = eps/2 + (1 - eps) sigmoid(logit)``
            (:func:`~sobirl.rlhf.preference_model.pair_losses`; a bounded loss); 0: plain Bradley-Terry.
    """

    exploration_warmup: int = 0
    discount: float = 1.0
    grad_clip: float | None = None
    random_response: float = 0.0

    def __post_init__(self) -> None:
        check_int("exploration_warmup", self.exploration_warmup, low=0)
        check_range("discount", self.discount, low=0.0, high=1.0)
        if self.grad_clip is not None:
            check_range("grad_clip", self.grad_clip, low=0.0, low_open=True)
        check_range("random_response", self.random_response, low=0.0, high=1.0, high_open=True)

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The setting names (flat config keys)."""
        return tuple(f.name for f in fields(cls))


class UpdateRule(ABC):
    """An upper-level rule: a surrogate on labelled pairs and the step it takes with it (module docstring).

    Args:
        config: the rule's settings (its ``Config``); None: the defaults.
    """

    name: ClassVar[str]
    """The rule's name in :data:`sobirl.rlhf.rules.RULES` (``--algo``)."""
    Config: ClassVar[type[RuleConfig]] = RuleConfig
    """The rule's frozen settings."""

    def __init__(self, config: RuleConfig | None = None) -> None:
        config = self.Config() if config is None else config
        if type(config) is not self.Config:
            raise TypeError(f"rule {self.name!r} takes a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> UpdateRule:
        """The rule with those of ``settings`` that are its own (:meth:`RuleConfig.setting_names`); the rest are
        ignored."""
        own = cls.Config.setting_names()
        return cls(cls.Config(**{k: v for k, v in settings.items() if k in own}))

    @property
    def needs_critic(self) -> bool:
        """Whether the second term reads :attr:`Follower.critic`."""
        return False

    @property
    def action_samples(self) -> int:
        """Draws of the follower's policy per visited state for :meth:`Visits.draw`."""
        return 1

    def begin_update(self) -> None:  # noqa: B027  (a hook: most rules keep no state across steps)
        """Called at the start of every reward update, once the follower has moved (a rule with state across steps
        may reset it); nothing by default."""

    def explores(self, agent_steps: int) -> bool:
        """Whether the second term is on after ``agent_steps`` follower steps (past the warm-up)."""
        return check_int("agent_steps", agent_steps, low=0) >= self.config.exploration_warmup

    def surrogate(
        self,
        reward_net: StepRewardFn,
        batch: PairBatch,
        *,
        agent_steps: int,
        follower: Follower | None = None,
        visits: Visits | None = None,
        update: int = 0,
    ) -> UpdateLoss:
        """The preference loss of ``batch`` plus, once :meth:`explores`, the rule's second term on ``visits``.

        Args:
            reward_net: ``r_x``.
            batch: the pairs of the preference loss.
            agent_steps: follower steps so far (the warm-up switch).
            follower: what the rule knows of the follower; needed while the second term is on.
            visits: the pairs of the second term with the follower's actions (:meth:`Visits.draw`); needed then too.
            update: the number of reward updates before this one (schedules such as PBRL's penalty).
        """
        observations, actions, labels = batch
        logits = preference_logits(reward_net, observations, actions, discount=self.config.discount)
        ce = preference_loss(logits, labels, random_response=self.config.random_response)
        if not self.explores(agent_steps):
            return UpdateLoss(ce, ce.item(), 0.0, False, logits.detach())
        if follower is None or visits is None:
            raise ValueError(f"{self.name}'s second term is on: pass the follower and the visits")
        second = self.second_term(reward_net, visits, follower, update)
        return UpdateLoss(ce + second, ce.item(), second.item(), True, logits.detach())

    @abstractmethod
    def second_term(self, reward_net: StepRewardFn, visits: Visits, follower: Follower, update: int) -> torch.Tensor:
        """The rule's second term as a scalar surrogate (differentiable in the reward net)."""

    def step(
        self,
        reward_net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        surrogate: Callable[[], UpdateLoss],
    ) -> UpdateLoss:
        """One update of the reward net: the gradient of ``surrogate()`` (a closure over one batch), clipped to
        ``grad_clip``, then ``optimizer.step()``; returns the evaluation at the current parameters."""
        optimizer.zero_grad()
        out = surrogate()
        out.loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(reward_net.parameters(), self.config.grad_clip)
        optimizer.step()
        return out


def leave_one_out(losses: torch.Tensor) -> torch.Tensor:
    """``l_j - mean_{j' != j} l_j'`` per pair (a baseline that leaves the score term's expectation unchanged)."""
    B = losses.shape[0]
    if B < 2:
        raise ValueError("the leave-one-out baseline needs a batch of at least 2 pairs")
    return (B * losses - losses.sum()) / (B - 1)
