"""The contract of a deep estimator of ``dQ/dx - dV/dx`` at the visited steps (one class per estimator).

An estimator's :meth:`Sensitivity.score` returns, per pair ``j`` of :class:`~sobirl.rlhf.rules.base.Visits`, a scalar
``score_j`` differentiable in the reward net whose gradient estimates ``sum_{i=1,2} sum_h (dQ(s_h^i, a_h^i)/dx -
dV(s_h^i)/dx)`` under the follower, in the units of the rewards the follower learns from. The rules weight it by
the pair's loss and ``1/tau`` (:mod:`sobirl.rlhf.rules.sobirl`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from sobirl.agents.types import StepRewardFn
from sobirl.rlhf.action_reward_net import ActionRewardNet
from sobirl.rlhf.visits import Follower, Visits


class Sensitivity(ABC):
    """An estimator of ``sum_{i,h} (dQ/dx - dV/dx)`` per pair (module docstring)."""

    name: ClassVar[str]
    needs_critic: ClassVar[bool] = False

    @abstractmethod
    def score(self, reward_net: StepRewardFn, visits: Visits, follower: Follower) -> torch.Tensor:
        """``(B,)`` scores whose gradient is the estimate, one per pair."""


def taken_and_baseline(
    reward_net: StepRewardFn, visits: Visits, clip: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``r_x(s_h, a_h)`` and the baseline ``b_x(s_h) = E_{a ~ pi(.|s_h)} r_x(s_h, a)``, each ``(B, 2, L)``, and every
    reward of the forward (flat), from ONE reward-net forward: over the taken and the ``k`` drawn actions (Box,
    ``b_x`` their mean), or every action's reward of a per-action net (Discrete, ``b_x`` exact). With ``clip`` the
    rewards are those the follower learns from, ``clamp(r_x, -clip, clip)`` (:attr:`Follower.reward_clip`)."""

    def clamp(r: torch.Tensor) -> torch.Tensor:
        return r if clip is None else r.clamp(-clip, clip)

    obs, act = visits.observations, visits.actions
    lead = obs.shape[:3]
    rows = obs.reshape(-1, *obs.shape[3:])
    if visits.policy_probs is not None:
        if not isinstance(reward_net, ActionRewardNet):
            raise TypeError(
                f"policy probabilities need a per-action reward net (ActionRewardNet), got {type(reward_net)}"
            )
        taken, every = reward_net.taken_and_all(rows, act.reshape(rows.shape[0], *act.shape[3:]))
        taken, every = clamp(taken), clamp(every)
        baseline = (visits.policy_probs.reshape(every.shape).to(every) * every).sum(-1)
        return taken.reshape(lead), baseline.reshape(lead), torch.cat([taken, every.reshape(-1)])
    drawn = visits.policy_actions
    k = drawn.shape[3]
    M = rows.shape[0]
    every = clamp(
        reward_net(
            torch.cat([rows, rows.repeat_interleave(k, dim=0)]),
            torch.cat([act.reshape(M, *act.shape[3:]), drawn.reshape(M * k, *drawn.shape[4:])]),
        )
    )
    return every[:M].reshape(lead), every[M:].reshape(M, k).mean(-1).reshape(lead), every
