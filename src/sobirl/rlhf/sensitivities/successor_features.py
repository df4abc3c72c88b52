"""``successor-features``: ``D_x(s_h, a_h) = theta . (psi(s_h, a_h) - E_{a~pi} psi(s_h, a))``, ``psi`` detached.

``psi`` is the successor-feature critic of the reward net's head (:mod:`sobirl.rlhf.successor`), so the gradient for
the head's parameters ``theta`` is ``dQ(s_h, a_h)/d theta - dV(s_h)/d theta`` with every gamma-propagated term, as
exact as the critic; the feature layers get no exploration term. ``E_{a~pi}`` is exact for Discrete actions and the
mean over the ``k`` drawn actions for Box actions.
"""

from __future__ import annotations

import torch

from sobirl.agents.types import StepRewardFn
from sobirl.rlhf.reward_net import head_parameters
from sobirl.rlhf.sensitivities.base import Sensitivity
from sobirl.rlhf.visits import Follower, Visits


class SuccessorFeaturesSensitivity(Sensitivity):
    name = "successor-features"
    needs_critic = True

    def score(self, reward_net: StepRewardFn, visits: Visits, follower: Follower) -> torch.Tensor:
        critic = follower.critic
        if critic is None:
            raise ValueError("the successor-features estimator needs the follower's critic (Follower.critic)")
        theta = head_parameters(reward_net)
        dtype = theta.dtype
        delta = critic.advantage_sum(
            visits.observations.to(dtype),
            visits.actions if visits.policy_probs is not None else visits.actions.to(dtype),
            policy_actions=None if visits.policy_actions is None else visits.policy_actions.to(dtype),
            policy_probs=visits.policy_probs,
        ).to(dtype)
        return delta @ theta
