"""Validation of a batch of visited pairs and the ``(S, A)`` table every estimator starts from."""

from __future__ import annotations

import torch

from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.validation import check_finite


def pair_table(pi: torch.Tensor, states: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``y = sum_i w_i (e_{s_i a_i} - pi(.|s_i) e_{s_i})`` as an ``(S, A)`` table (two scatter-adds)."""
    S, A = pi.shape
    y = torch.zeros(S * A, dtype=DTYPE, device=pi.device).index_add_(0, states * A + actions, weights).view(S, A)
    return y - pi * state_sums(states, weights, S).unsqueeze(1)


def state_sums(states: torch.Tensor, weights: torch.Tensor, S: int) -> torch.Tensor:
    """``b(s) = sum_i w_i 1{s_i = s}``, float64 ``(S,)``."""
    return torch.zeros(S, dtype=DTYPE, device=weights.device).index_add_(0, states, weights)


def check_batch(
    mdp: TabularMDP, pi: torch.Tensor, states: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate the policy and the batch; return them as float64 / long tensors on the policy's device."""
    S, A = mdp.shape
    if not isinstance(pi, torch.Tensor) or not pi.dtype.is_floating_point or tuple(pi.shape) != (S, A):
        shape = tuple(pi.shape) if isinstance(pi, torch.Tensor) else type(pi).__name__
        raise ValueError(f"pi must be a floating tensor of shape (S, A) = ({S}, {A}), got {shape}")
    check_finite("pi", pi)
    pi = pi.detach().to(DTYPE)
    tensors = {"states": states, "actions": actions, "weights": weights}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or t.dim() != 1:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 1-D tensor, got {shape}")
    lengths = {name: t.numel() for name, t in tensors.items()}
    if len(set(lengths.values())) != 1:
        listed = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise ValueError(f"states, actions and weights must have the same length, got {listed}")
    for name, t, size in (("states", states, S), ("actions", actions, A)):
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor, got dtype {t.dtype}")
        if t.numel() and (t.min() < 0 or t.max() >= size):
            raise ValueError(f"{name} must lie in [0, {size - 1}], got values in [{t.min()}, {t.max()}]")
    if not weights.dtype.is_floating_point:
        raise TypeError(f"weights must be a floating tensor, got dtype {weights.dtype}")
    check_finite("weights", weights)
    device = pi.device
    return pi, states.to(device, torch.long), actions.to(device, torch.long), weights.detach().to(device, DTYPE)
