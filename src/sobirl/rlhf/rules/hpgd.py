"""``hpgd`` (Thoma et al. 2024, adapted): the ``sobirl`` surrogate with HPGD's Monte-Carlo sensitivities.

HPGD estimates ``dQ(s_h, a_h)/dx`` by rollouts of the follower from ``(s_h, a_h)`` and ``dQ(s_h, a'_h)/dx``,
``a'_h ~ pi``, by a second rollout; without a restartable simulator the fragment is the only rollout, so the first is
its own continuation and the second its first step (``monte-carlo``, with that estimator's bias,
:mod:`sobirl.rlhf.sensitivities.monte_carlo`). HPGD's gradient-norm clipping is ``grad_clip``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sobirl.rlhf.rules.base import RuleConfig
from sobirl.rlhf.rules.sobirl import SoBiRL
from sobirl.rlhf.sensitivities import MonteCarlo
from sobirl.validation import check_int


@dataclass(frozen=True)
class HPGDConfig(RuleConfig):
    """Attributes (besides :class:`~sobirl.rlhf.rules.base.RuleConfig`'s):
    action_samples: draws of the follower's policy per visited state (Box actions; ``>= 1``).
    """

    action_samples: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("action_samples", self.action_samples, low=1)


class HPGD(SoBiRL):
    name = "hpgd"
    Config: ClassVar[type[RuleConfig]] = HPGDConfig
    sensitivity_class = MonteCarlo
