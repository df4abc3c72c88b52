"""``monte-carlo``: ``D_x(s_h, a_h) = sum_{m=h}^{L-1} gamma^(m-h) r_x(s_m, a_m) - b_x(s_h)``.

The discounted return of the fragment's own continuation minus the one-step baseline. On-policy, its gradient's
expectation given ``(s_h, a_h)`` is ``dQ_{L-h}(s_h, a_h)/dx - E_{a~pi} J(s_h, a)``
(``Q_n``: the ``n``-step truncated Q):
biased by ``+ gamma E_{a~pi, s'|s_h}[dV(s')/dx]`` (the baseline keeps only the first step of ``dV``) and
``- gamma^(L-h) E[dV(s_L)/dx | s_h, a_h]`` (the continuation stops at the fragment's end). Summed over ``h`` each step
gets the weight ``c_m = sum_{h<=m} gamma^(m-h)``, so the score is linear in the rewards.
"""

from __future__ import annotations

import torch

from sobirl.agents.types import StepRewardFn
from sobirl.rlhf.sensitivities.base import Sensitivity, taken_and_baseline
from sobirl.rlhf.visits import Follower, Visits


class MonteCarlo(Sensitivity):
    name = "monte-carlo"

    def score(self, reward_net: StepRewardFn, visits: Visits, follower: Follower) -> torch.Tensor:
        taken, baseline, _ = taken_and_baseline(reward_net, visits, follower.reward_clip)
        L = taken.shape[-1]
        c = torch.cumsum(follower.gamma ** torch.arange(L, dtype=taken.dtype, device=taken.device), dim=0)
        return (taken @ c).sum(dim=1) - baseline.sum(dim=(1, 2))
