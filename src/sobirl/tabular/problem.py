"""A bilevel RL problem: the follower's MDP, the leader's reward parameterisation and objective."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.tabular.soft import check_reward
from sobirl.validation import check_finite, check_parameters

RewardFn = Callable[[torch.Tensor], torch.Tensor]
UpperFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class BilevelProblem:
    """``min_x f(x, pi*(x))`` where ``pi*(x)`` is the soft-optimal policy of ``mdp`` under reward ``r_x``.

    Args:
        mdp: the follower's MDP (transitions, gamma, tau, rho).
        reward: ``r_fn(x) -> (S, A)`` tensor, differentiable in ``x``.
        upper: ``f_fn(x, pi) -> 0-dim`` tensor, differentiable in ``x`` and in the ``(S, A)`` policy ``pi``.
        x0: a suggested starting point (problem builders in :mod:`sobirl.problems` set it), or None.
        name: a short label used in logs and run directories.
        defaults: method parameters that suit this problem, ``{method: {name: value}}``; the key ``"*"`` applies
            to every method and may hold only the shared leader step (``beta``, ``clip``).
            :func:`sobirl.algorithms.solve` uses them where the caller passes no value.

    The two callables are checked on every call (shape, scalar-ness, finiteness) so that a faulty
    parameterisation fails at once with a message instead of leaking NaN into a run.
    """

    def __init__(
        self,
        mdp: TabularMDP,
        reward: RewardFn,
        upper: UpperFn,
        *,
        x0: torch.Tensor | None = None,
        name: str = "bilevel",
        defaults: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
        if not callable(reward):
            raise TypeError("reward must be callable: r_fn(x) -> (S, A) tensor")
        if not callable(upper):
            raise TypeError("upper must be callable: f_fn(x, pi) -> 0-dim tensor")
        self.mdp = mdp
        self.reward_fn = reward
        self.upper_fn = upper
        if x0 is not None:
            check_parameters("x0", x0)
        self.x0 = x0
        self.name = name
        self.defaults = {method: dict(params) for method, params in (defaults or {}).items()}
        unknown = sorted(set(self.defaults.get("*", {})) - {"beta", "clip"})
        if unknown:
            raise ValueError(
                f"defaults['*'] may hold only beta and clip (shared by every method), got {', '.join(unknown)}"
            )

    def reward(self, x: torch.Tensor) -> torch.Tensor:
        """``r_x`` as a validated float64 ``(S, A)`` tensor (keeps the autograd graph to ``x``)."""
        if self.x0 is not None and x.shape != self.x0.shape:
            raise ValueError(
                f"x must have shape {tuple(self.x0.shape)} (that of the problem's x0), got {tuple(x.shape)}"
            )
        return check_reward(self.mdp, self.reward_fn(x), name="reward(x)")

    def upper(self, x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        """``f(x, pi)`` as a validated finite 0-dim float64 tensor."""
        f = self.upper_fn(x, pi)
        if not isinstance(f, torch.Tensor) or f.dim() != 0 or not f.dtype.is_floating_point:
            shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"upper(x, pi) must return a 0-dim floating tensor, got {shape}")
        check_finite("upper(x, pi)", f)
        return f.to(DTYPE)

    def __repr__(self) -> str:
        return f"BilevelProblem({self.name!r}, {self.mdp!r})"
