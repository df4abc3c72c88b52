"""``stoc-sobirl``: stochastic model-free SoBiRL with STORM momentum (docs/math.md, section 5).

Per outer iteration ``k``, with a mini-batch ``B_k`` (its random numbers drawn once and used at both points):

    h_k     = g(x_k; B_k) + (1 - eta_k) (h_{k-1} - g(x_{k-1}; B_k))       (h_0 = g(x_0; B_0))
    x_{k+1} = x_k - beta_k h_k

``g(x; B)`` is the model-free estimate of :mod:`sobirl.algorithms.sobirl_mf` under the follower's policy at ``x``
(the policy of the previous iteration is kept for ``g(x_{k-1}; B_k)``). The correction term cancels most of the
mini-batch noise when consecutive iterates are close, so small batches suffice. Schedules, with ``d = decay``:

    beta_k = beta (1 + k/d)^(-1/3),     eta_k = min(1, eta (1 + k/d)^(-2/3))

(STORM's ``eta_k ~ beta_k^2``; ``decay = 0`` keeps both constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.algorithms.model_free import ModelFreeConfig, ModelFreeLoop
from sobirl.tabular.problem import BilevelProblem
from sobirl.validation import check_range


@dataclass(frozen=True)
class StocSoBiRLConfig(ModelFreeConfig):
    """Hyper-parameters of Stoc-SoBiRL (and those of :class:`~sobirl.algorithms.model_free.ModelFreeConfig`).

    Attributes:
        batch: mini-batch of draws per estimate (>= 1); each iteration estimates twice on it.
        eta: momentum weight at k = 0 in (0, 1]: 1 uses the new estimate only, small values keep more history.
        decay: schedule scale d (>= 0) of beta_k and eta_k; 0 keeps both constant.
    """

    batch: int = 64
    eta: float = 0.5
    decay: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("eta", self.eta, low=0.0, high=1.0, low_open=True)
        check_range("decay", self.decay, low=0.0)


class StocSoBiRL(ModelFreeLoop):
    """Stoc-SoBiRL. Metrics: ``objective`` (mean sampled loss at the iterate), ``grad_norm`` (``|h_k|`` before
    clipping), ``beta`` and ``eta`` (this iteration's schedule), ``samples`` and ``samples_total``."""

    name = "stoc-sobirl"
    Config = StocSoBiRLConfig

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: StocSoBiRLConfig) -> None:
        super().__init__(prob, x0, config)
        self.k = 0
        self.h: torch.Tensor | None = None
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None  # (x_{k-1}, its follower's policy)

    def step(self) -> dict[str, float]:
        cfg: StocSoBiRLConfig = self.config  # type: ignore[assignment]
        decay = 1.0 + self.k / cfg.decay if cfg.decay > 0 else 1.0
        beta, eta = cfg.beta * decay ** (-1.0 / 3.0), min(1.0, cfg.eta * decay ** (-2.0 / 3.0))
        pi, samples = self.follow(self.x)
        batch_seed = int(torch.randint(0, 2**62, (1,), generator=self.generator).item())

        def on_batch() -> torch.Generator:
            return torch.Generator(device=pi.device).manual_seed(batch_seed)

        new = self.estimate(self.x, pi, on_batch())
        samples += new.transitions
        if self.h is None or self.previous is None:
            h = new.grad
        else:
            x_prev, pi_prev = self.previous
            old = self.estimate(x_prev, pi_prev, on_batch())
            samples += old.transitions
            h = new.grad + (1.0 - eta) * (self.h - old.grad)
        self.h, self.previous = h, (self.x, pi)
        grad_norm = self.descend(h, beta)
        self.k += 1
        return {"objective": new.loss, "grad_norm": grad_norm, "beta": beta, "eta": eta, **self.count(samples)}
