"""The batched Bradley-Terry preference model: a whole mini-batch of fragment pairs in ONE reward-net forward.

For pairs ``(d_1, d_2)`` of ``L``-step fragments and a reward net ``r_x`` (design math, section 5):

    R_x(d) = sum_{t=0}^{L-1} discount^t r_x(s_t, a_t),      logit = R_x(d_1) - R_x(d_2),
    P(d_1 preferred) = sigmoid(logit),
    l = -[ y log sigmoid(logit) + (1 - y) log sigmoid(-logit) ]     (mean over the batch),

with ``y`` in ``[0, 1]`` the probability that ``d_1`` is preferred. The observations ``(B, 2, L, *obs_shape)`` and
actions ``(B, 2, L, *act_shape)`` are flattened to ``B * 2 * L`` rows, the reward net is called ONCE on them, and
the per-step rewards are reshaped back and summed: no Python loop over pairs or fragments (the seed authors' code
and ``imitation`` call the net once per fragment; ``benchmarks/preference_model.py`` measures the difference).
"""

from __future__ import annotations

import math

import torch
from torch.nn.functional import binary_cross_entropy_with_logits, logsigmoid

from sobirl.agents.types import StepRewardFn
from sobirl.validation import check_range


def fragment_returns(
    reward_net: StepRewardFn, observations: torch.Tensor, actions: torch.Tensor, *, discount: float = 1.0
) -> torch.Tensor:
    """``R_x`` of every fragment, ``(B, 2)``, from one call of ``reward_net`` on all ``B * 2 * L`` steps."""
    check_range("discount", discount, low=0.0, high=1.0)
    if observations.dim() < 3 or observations.shape[1] != 2 or actions.shape[:3] != observations.shape[:3]:
        raise ValueError(
            "observations and actions must start with the same (B, 2, L), got "
            f"{tuple(observations.shape)} and {tuple(actions.shape)}"
        )
    B, _, L = observations.shape[:3]
    rewards = reward_net(
        observations.reshape(B * 2 * L, *observations.shape[3:]), actions.reshape(B * 2 * L, *actions.shape[3:])
    )
    if rewards.shape != (B * 2 * L,):
        raise ValueError(
            f"reward_net must return one reward per step, shape ({B * 2 * L},), got {tuple(rewards.shape)}"
        )
    rewards = rewards.reshape(B, 2, L)
    if discount == 1.0:
        return rewards.sum(dim=-1)
    weights = discount ** torch.arange(L, dtype=rewards.dtype, device=rewards.device)
    return rewards @ weights


def preference_logits(
    reward_net: StepRewardFn, observations: torch.Tensor, actions: torch.Tensor, *, discount: float = 1.0
) -> torch.Tensor:
    """``R_x(d_1) - R_x(d_2)`` per pair, ``(B,)`` (module docstring)."""
    R = fragment_returns(reward_net, observations, actions, discount=discount)
    return R[:, 0] - R[:, 1]


def preference_loss(logits: torch.Tensor, labels: torch.Tensor, *, random_response: float = 0.0) -> torch.Tensor:
    """The mean Bradley-Terry cross-entropy of ``logits (B,)`` against labels ``y (B,)`` in ``[0, 1]``
    (:func:`pair_losses`)."""
    return pair_losses(logits, labels, random_response=random_response).mean()


def pair_losses(logits: torch.Tensor, labels: torch.Tensor, *, random_response: float = 0.0) -> torch.Tensor:
    """Each pair's cross-entropy ``-[y log P + (1 - y) log(1 - P)]``, ``(B,)``, with
    ``P = eps/2 + (1 - eps) sigmoid(logit)``: the Bradley-Terry model with a random-response probability
    ``eps = random_response`` in ``[0, 1)`` (Christiano et al. 2017; 0: plain Bradley-Terry). With ``eps > 0`` the loss
    is bounded by ``-log(eps/2)``, however wrong a prediction."""
    if labels.shape != logits.shape:
        raise ValueError(f"labels must have the logits' shape {tuple(logits.shape)}, got {tuple(labels.shape)}")
    y = labels.to(logits.dtype)
    eps = check_range("random_response", random_response, low=0.0, high=1.0, high_open=True)
    if eps == 0.0:
        return binary_cross_entropy_with_logits(logits, y, reduction="none")
    floor = torch.full_like(logits, math.log(eps / 2))
    keep = math.log1p(-eps)
    log_p = torch.logaddexp(floor, keep + logsigmoid(logits))
    log_q = torch.logaddexp(floor, keep + logsigmoid(-logits))
    return -(y * log_p + (1 - y) * log_q)


def preference_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of pairs whose preferred fragment (``logit > 0``: the first) agrees with the label's
    (``y > 0.5``); pairs labelled exactly 0.5 prefer neither and are left out (NaN if no pair is left)."""
    if labels.shape != logits.shape:
        raise ValueError(f"labels must have the logits' shape {tuple(logits.shape)}, got {tuple(labels.shape)}")
    decided = labels != 0.5
    if not decided.any():
        return float("nan")
    return ((logits[decided] > 0) == (labels[decided] > 0.5)).double().mean().item()
