"""``stoc-sobirl``: the ``sobirl`` surrogate's gradient with STORM's recursion as its own update (design math,
section 5; the tabular method is :mod:`sobirl.algorithms.stoc_sobirl`).

Per step ``k`` on mini-batch ``B_k`` (the same pairs, labels and follower actions at both points):

    h_k     = g(x_k; B_k) + (1 - eta_k) (h_{k-1} - g(x_{k-1}; B_k)),      h_0 = g(x_0; B_0)
    x_{k+1} = x_k - beta_k h_k,

with ``beta_k = storm_lr (1 + k/d)^(-1/3)`` and ``eta_k = min(1, storm_eta (1 + k/d)^(-2/3))``, ``d = storm_decay``
(0: constant). The step is plain SGD with ``h_k``: the reward net's optimiser (AdamW) is not used, so no second
momentum is stacked on STORM's. The follower does not move within a reward update, so ``g(x_{k-1}; B_k)`` is taken
under the follower of ``x_k``; across reward updates the follower changes, so the recursion restarts (``h`` is
dropped) at the first step of each update (:meth:`StocSoBiRL.begin_update`), while the schedule's ``k`` runs on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from sobirl.rlhf.rules.base import RuleConfig, UpdateLoss
from sobirl.rlhf.rules.sobirl import SoBiRL, SoBiRLConfig
from sobirl.validation import check_range


@dataclass(frozen=True)
class StocSoBiRLConfig(SoBiRLConfig):
    """Attributes (besides :class:`~sobirl.rlhf.rules.sobirl.SoBiRLConfig`'s):
    storm_lr: ``beta > 0``, the SGD step at ``k = 0``.
    storm_eta: ``eta`` in ``(0, 1]``, the momentum weight at ``k = 0`` (1: the plain mini-batch gradient).
    storm_decay: the schedule scale ``d >= 0`` (0: constant steps and weights).
    """

    storm_lr: float = 1e-3
    storm_eta: float = 0.5
    storm_decay: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("storm_lr", self.storm_lr, low=0.0, low_open=True)
        check_range("storm_eta", self.storm_eta, low=0.0, high=1.0, low_open=True)
        check_range("storm_decay", self.storm_decay, low=0.0)


class StocSoBiRL(SoBiRL):
    name = "stoc-sobirl"
    Config: ClassVar[type[RuleConfig]] = StocSoBiRLConfig

    def __init__(self, config: RuleConfig | None = None) -> None:
        super().__init__(config)
        self.k = 0
        """Steps taken so far (the schedule's ``k``)."""
        self.h: list[torch.Tensor] | None = None
        self.previous: list[torch.Tensor] | None = None

    def begin_update(self) -> None:
        """Drop ``h`` and ``x_{k-1}``: the next step starts the recursion afresh (the follower has moved)."""
        self.h, self.previous = None, None

    def schedule(self) -> tuple[float, float]:
        """``(beta_k, eta_k)`` at the current ``k``."""
        c = self.config
        decay = 1.0 + self.k / c.storm_decay if c.storm_decay > 0 else 1.0
        return c.storm_lr * decay ** (-1.0 / 3.0), min(1.0, c.storm_eta * decay ** (-2.0 / 3.0))

    def step(
        self,
        reward_net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        surrogate: Callable[[], UpdateLoss],
    ) -> UpdateLoss:
        """One STORM step (module docstring); ``optimizer`` is not used."""
        params = [p for p in reward_net.parameters() if p.requires_grad]
        beta, eta = self.schedule()
        out = surrogate()
        g_new = _gradient(out.loss, params)
        if self.h is None or self.previous is None:
            h = g_new
        else:
            current = [p.detach().clone() for p in params]
            _load(params, self.previous)
            try:
                g_old = _gradient(surrogate().loss, params)
            finally:
                _load(params, current)
            h = [gn + (1.0 - eta) * (hp - go) for gn, hp, go in zip(g_new, self.h, g_old, strict=True)]
        if self.config.grad_clip is not None:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in h]))
            h = [v * min(1.0, self.config.grad_clip / max(norm.item(), 1e-12)) for v in h]
        self.h = h
        self.previous = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, v in zip(params, h, strict=True):
                p.sub_(beta * v)
        self.k += 1
        return out


def _gradient(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """``d loss / d params``, zero for the parameters the loss does not reach; ``.grad`` is left alone."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _load(params: list[torch.Tensor], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, v in zip(params, values, strict=True):
            p.copy_(v)
