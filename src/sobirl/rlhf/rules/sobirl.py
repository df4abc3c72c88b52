"""``sobirl``: the model-free SoBiRL hyper-gradient of the design math, section 5, as one surrogate.

With ``B`` pairs of fragments of the current follower (:class:`~sobirl.rlhf.visits.Visits`), their losses ``l_j``,
the leave-one-out baseline ``lbar_{-j} = mean_{j' != j} l_j'`` and an estimate ``score_j`` of
``sum_{i,h} (dQ(s_h^i, a_h^i)/dx - dV(s_h^i)/dx)`` (:data:`~sobirl.rlhf.sensitivities.SENSITIVITIES`),

    L(x) = mean_j l_j + (1/tau) mean_j [ (l_j - lbar_{-j}).detach() * score_j ],

``tau`` the temperature the follower is soft-optimal for, in the units of the rewards it learns from. On-policy
``E[score] = 0``, so the baseline leaves the expectation unchanged. There is no cap, clip or rescaling: the weight is
exactly ``1/tau``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sobirl.agents.types import StepRewardFn
from sobirl.rlhf.preference_model import pair_losses, preference_logits
from sobirl.rlhf.rules.base import RuleConfig, UpdateRule, leave_one_out
from sobirl.rlhf.sensitivities import SENSITIVITIES, Sensitivity
from sobirl.rlhf.visits import Follower, Visits
from sobirl.validation import check_choice, check_int


@dataclass(frozen=True)
class SoBiRLConfig(RuleConfig):
    """Attributes (besides :class:`~sobirl.rlhf.rules.base.RuleConfig`'s):
    estimator: the estimator of ``dQ/dx - dV/dx``, one of :data:`~sobirl.rlhf.sensitivities.SENSITIVITIES`.
    action_samples: draws of the follower's policy per visited state (Box actions; ``>= 1``).
    """

    estimator: str = "successor-features"
    action_samples: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("estimator", self.estimator, SENSITIVITIES)
        check_int("action_samples", self.action_samples, low=1)


class SoBiRL(UpdateRule):
    name = "sobirl"
    Config: ClassVar[type[RuleConfig]] = SoBiRLConfig

    sensitivity_class: ClassVar[type[Sensitivity] | None] = None
    """A fixed estimator of ``dQ/dx - dV/dx`` (a subclass's); None: the ``estimator`` setting's."""

    def __init__(self, config: RuleConfig | None = None) -> None:
        super().__init__(config)
        fixed = self.sensitivity_class
        self.sensitivity: Sensitivity = SENSITIVITIES[self.config.estimator]() if fixed is None else fixed()

    @property
    def needs_critic(self) -> bool:
        return self.sensitivity.needs_critic

    @property
    def action_samples(self) -> int:
        return self.config.action_samples

    def second_term(self, reward_net: StepRewardFn, visits: Visits, follower: Follower, update: int) -> torch.Tensor:
        with torch.no_grad():
            logits = preference_logits(reward_net, visits.observations, visits.actions, discount=self.config.discount)
            losses = pair_losses(logits, visits.labels, random_response=self.config.random_response)
        score = self.sensitivity.score(reward_net, visits, follower)
        return (leave_one_out(losses).to(score.dtype) * score).mean() / follower.tau
