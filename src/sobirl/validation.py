"""Fail-fast checks shared by every layer: each error names the field and the allowed values."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def check_range(
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``float(value)`` if it is a finite number inside the interval, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be in {interval}, got {value:g}")
    return value


def check_int(name: str, value: int, *, low: int = 0) -> int:
    """Return ``value`` if it is an integer ``>= low``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return value


def check_choice(name: str, value: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise listing them."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(allowed)}")
    return value


class NonFiniteError(ValueError):
    """A value that must be finite holds NaN or infinity."""


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` if ``tensor`` holds NaN or infinity."""
    if not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).sum().item()
        raise NonFiniteError(f"{name} must be finite; it has {bad} NaN/inf entries")


def check_parameters(name: str, x: torch.Tensor) -> None:
    """Leader parameters: a 1-D floating, finite tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D floating torch.Tensor, got {type(x).__name__}")
    if x.dim() != 1 or not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a 1-D floating tensor, got shape {tuple(x.shape)} and dtype {x.dtype}")
    check_finite(name, x)
