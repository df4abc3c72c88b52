"""``successor-features``: ``D_x(s_h, a_h) = theta . (psi(s_h, a_h) - E_{a~pi} psi(s_h, a))``, ``psi`` detached.

``psi`` is the successor-feature critic of the reward net's head (:mod:`sobirl.rlhf.successor`), so the gradient for
the head's parameters ``theta`` is ``dQ(s_h, a_h)/d theta - dV(s_h)/d theta`` with every gamma-propagated term, as
exact as the critic; the feature layers get no exploration term. ``E_{a~pi}`` is exact for Discrete actions and the
mean over the ``k`` drawn actions for Box actions.
"""

from __future__ import annotations

import torch

from sobirl.rlhf.preference_model import RewardFn
from sobirl.rlhf.reward_net import head_parameters
from sobirl.rlhf.sensitivities.base import Sensitivity
from sobirl.rlhf.visits import Follower, Visits


class SuccessorFeaturesSensitivity(Sensitivity):
    name = "successor-features"
    needs_critic = True

    def score(self, reward_net: RewardFn, visits: Visits, follower: Follower) -> torch.Tensor:
        critic = follower.critic
        if critic is None:
            raise ValueError("the successor-features estimator needs the follower's critic (Follower.critic)")
        theta = head_parameters(reward_net)
        obs, act = visits.observations.to(theta.dtype), visits.actions
        with torch.no_grad():
            if visits.policy_probs is not None:
                every = critic.psi_all(obs)  # (B, 2, L, |A|, p)
                index = act.reshape(every.shape[:-2]).long()
                taken = every.gather(-2, index[..., None, None].expand(*index.shape, 1, every.shape[-1])).squeeze(-2)
                expected = (visits.policy_probs.to(every).unsqueeze(-1) * every).sum(-2)
            else:
                k = visits.policy_actions.shape[3]
                taken = critic.psi(obs, act.to(theta.dtype))
                drawn = critic.psi(
                    obs.unsqueeze(3).expand(*obs.shape[:3], k, *obs.shape[3:]), visits.policy_actions.to(theta.dtype)
                )
                expected = drawn.mean(dim=3)
            delta = (taken - expected).sum(dim=(1, 2)).to(theta.dtype)  # (B, p)
        return delta @ theta
