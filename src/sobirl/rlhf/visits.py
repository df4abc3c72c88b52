"""What an update rule is given besides the reward net: the follower (:class:`Follower`) and the pairs its second term
is estimated on, with the follower's actions at their states (:class:`Visits`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.agents.types import ActionProbabilities, ActionSampler
from sobirl.rlhf.successor import SuccessorFeatures
from sobirl.validation import check_int, check_range

PairBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""Labelled fragment pairs: observations ``(B, 2, L, *obs_shape)``, actions ``(B, 2, L, *act_shape)``, labels
``(B,)``."""


@dataclass(frozen=True)
class Follower:
    """What an update rule knows of the follower at one reward update.

    Attributes:
        tau: the entropy temperature ``> 0`` the follower's policy is soft-optimal for (SAC's ``alpha``), in the
            units of the rewards it learns from.
        gamma: the follower's discount in ``[0, 1]``.
        sample_actions: Box actions: draws from the follower's policy.
        probabilities: Discrete actions: the follower's ``pi(.|s)``.
        critic: the successor-feature critic of the reward net's head, where a rule's estimator needs it.
        reward_clip: the follower learns from ``clamp(r_x, -reward_clip, reward_clip)``; None: from ``r_x``. The
            second terms differentiate that reward.
    """

    tau: float
    gamma: float
    sample_actions: ActionSampler | None = None
    probabilities: ActionProbabilities | None = None
    critic: SuccessorFeatures | None = None
    reward_clip: float | None = None

    def __post_init__(self) -> None:
        check_range("tau", self.tau, low=0.0, low_open=True)
        check_range("gamma", self.gamma, low=0.0, high=1.0)
        if (self.sample_actions is None) == (self.probabilities is None):
            raise ValueError("a Follower needs exactly one of sample_actions (Box) and probabilities (Discrete)")


@dataclass(frozen=True)
class Visits:
    """Pairs the second term is estimated on, with the follower's actions at each visited state.

    Attributes:
        observations, actions, labels: the pairs (:data:`PairBatch`).
        policy_actions: Box actions: ``k`` draws of the follower's policy per visited state, ``(B, 2, L, k, *act)``.
        policy_probs: Discrete actions: ``pi(.|s_h)`` per visited state, ``(B, 2, L, |A|)``.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    labels: torch.Tensor
    policy_actions: torch.Tensor | None = None
    policy_probs: torch.Tensor | None = None

    @classmethod
    def draw(cls, batch: PairBatch, follower: Follower, action_samples: int = 1) -> Visits:
        """The follower's actions at every visited state in ONE policy call, without a graph: ``action_samples``
        draws per state (Box) or the probabilities (Discrete)."""
        observations, actions, _ = batch
        lead = observations.shape[:3]
        rows = observations.reshape(-1, *observations.shape[3:])
        with torch.no_grad():
            if follower.probabilities is not None:
                probs = follower.probabilities(rows)
                return cls(*batch, policy_probs=probs.reshape(*lead, probs.shape[-1]).to(actions.device))
            k = check_int("action_samples", action_samples, low=1)
            drawn = follower.sample_actions(rows.repeat_interleave(k, dim=0))
        drawn = drawn.reshape(*lead, k, *drawn.shape[1:]).to(actions)
        if drawn.shape[4:] != actions.shape[3:]:
            raise ValueError(
                f"the follower's actions have shape {tuple(drawn.shape[4:])}, the fragments' {actions.shape[3:]}"
            )
        return cls(*batch, policy_actions=drawn)

    @property
    def pairs(self) -> int:
        return self.observations.shape[0]
