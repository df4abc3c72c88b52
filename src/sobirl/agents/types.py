"""The callables the follower exchanges with the upper level, as type aliases: the reward it learns from (a reward net
on steps) and its policy, as a sampler (Box actions) or as probabilities (Discrete actions)."""

from __future__ import annotations

from collections.abc import Callable

import torch

StepRewardFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A reward net on steps: ``(M, *obs_shape)`` observations and ``(M, *act_shape)`` actions to ``(M,)`` rewards (not
the tabular :data:`sobirl.tabular.problem.RewardFn`, parameters ``x`` to a whole reward table)."""

ActionSampler = Callable[[torch.Tensor], torch.Tensor]
"""The follower's policy: ``(M, *obs_shape)`` observations to ``(M, *act_shape)`` actions, one draw per row."""

ActionProbabilities = Callable[[torch.Tensor], torch.Tensor]
"""The follower's policy over Discrete actions: ``(M, *obs_shape)`` observations to ``(M, |A|)`` probabilities."""
