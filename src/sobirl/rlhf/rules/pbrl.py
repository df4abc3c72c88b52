"""``pbrl`` (Shen et al. 2024, adapted): the value penalty ``lambda (V*_x - V^pi_x)`` added to the preference loss.

``pi*`` is the follower's current policy (its approximate soft optimum for ``r_x``) and ``pi`` the policies that
produced the fragments; the gap at each visited state is estimated by the one-step difference
``b_x(s_h) - r_x(s_h, a_h)``, in units of ``sigma_x``, the standard deviation of every reward of the forward (the
taken and the policy's actions; differentiated
through: nothing else fixes the scale of a term linear in ``r_x``):

    L(x) = mean_j l_j + lambda_k mean_{j,i,h} [ b_x(s_h^i) - r_x(s_h^i, a_h^i) ] / sigma_x,

``lambda_k = min(penalty_max, penalty * penalty_growth^k)`` at reward update ``k``. PBRL's policy step tends to the
follower's own policy gradient as lambda grows; the follower here is SAC on ``r_x``, i.e. that limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sobirl.agents.types import StepRewardFn
from sobirl.rlhf.rules.base import RuleConfig, UpdateRule
from sobirl.rlhf.sensitivities import taken_and_baseline
from sobirl.rlhf.visits import Follower, Visits
from sobirl.validation import check_int, check_range

SCALE_EPS = 1e-8
"""Floor of ``sigma_x``."""


@dataclass(frozen=True)
class PBRLConfig(RuleConfig):
    """Attributes (besides :class:`~sobirl.rlhf.rules.base.RuleConfig`'s):
    penalty: the initial penalty weight ``lambda_0 > 0``.
    penalty_growth: the factor ``>= 1`` on lambda per reward update.
    penalty_max: the cap on lambda, ``>= penalty``.
    action_samples: draws of the follower's policy per visited state (Box actions; ``>= 1``).
    """

    penalty: float = 1.0
    penalty_growth: float = 1.05
    penalty_max: float = 100.0
    action_samples: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("penalty", self.penalty, low=0.0, low_open=True)
        check_range("penalty_growth", self.penalty_growth, low=1.0)
        check_range("penalty_max", self.penalty_max, low=self.penalty)
        check_int("action_samples", self.action_samples, low=1)


class PBRL(UpdateRule):
    name = "pbrl"
    Config: ClassVar[type[RuleConfig]] = PBRLConfig

    @property
    def action_samples(self) -> int:
        return self.config.action_samples

    def penalty_weight(self, update: int) -> float:
        """``lambda_k = min(penalty_max, penalty * penalty_growth^k)`` at reward update ``k >= 0``."""
        c = self.config
        return min(c.penalty_max, c.penalty * c.penalty_growth ** check_int("update", update, low=0))

    def second_term(self, reward_net: StepRewardFn, visits: Visits, follower: Follower, update: int) -> torch.Tensor:
        taken, baseline, every = taken_and_baseline(reward_net, visits, follower.reward_clip)
        sigma = every.std(correction=0).clamp_min(SCALE_EPS)
        return self.penalty_weight(update) * (baseline - taken).mean() / sigma
