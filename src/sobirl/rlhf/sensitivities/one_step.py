"""``one-step``: ``D_x(s_h, a_h) = r_x(s_h, a_h) - b_x(s_h)``.

Its gradient estimates ``J(s_h, a_h) - E_{a~pi} J(s_h, a)`` (``J = d r_x/dx``) without bias: ``dQ/dx - dV/dx`` minus
the gamma-propagated terms ``gamma (E_{s'|s_h,a_h} - E_{a~pi, s'|s_h}) dV(s')/dx``. Exact at gamma = 0, biased
otherwise (the seed authors' estimator; docs/math.md, section 5).
"""

from __future__ import annotations

import torch

from sobirl.agents.types import StepRewardFn
from sobirl.rlhf.sensitivities.base import Sensitivity, taken_and_baseline
from sobirl.rlhf.visits import Follower, Visits


class OneStep(Sensitivity):
    name = "one-step"

    def score(self, reward_net: StepRewardFn, visits: Visits, follower: Follower) -> torch.Tensor:
        taken, baseline, _ = taken_and_baseline(reward_net, visits, follower.reward_clip)
        return (taken - baseline).sum(dim=(1, 2))
