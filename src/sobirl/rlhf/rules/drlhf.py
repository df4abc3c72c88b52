"""``drlhf`` (Christiano et al. 2017): ``L(x) = mean_j l_j``, the preference loss alone (no second term)."""

from __future__ import annotations

import torch

from sobirl.agents.types import StepRewardFn
from sobirl.rlhf.rules.base import UpdateRule
from sobirl.rlhf.visits import Follower, Visits


class DRLHF(UpdateRule):
    name = "drlhf"

    def explores(self, agent_steps: int) -> bool:
        return False

    def second_term(self, reward_net: StepRewardFn, visits: Visits, follower: Follower, update: int) -> torch.Tensor:
        raise RuntimeError("drlhf has no second term")
