"""What the model-free methods share: their configuration, the follower they run, and one gradient estimate.

The follower's policy comes from either

- ``lower="q-learning"``: sample-based soft Q-learning (:func:`sobirl.tabular.sampled.soft_q_learning`),
  ``lower_steps`` updates of the whole table per outer iteration with ``samples_per_pair`` sampled successors each,
  warm-started from the previous iteration's ``Q`` (the follower never reads ``P``); or
- ``lower="exact"``: soft policy iteration to ``tol`` with ``P`` known (warm-started), which isolates the
  estimator's error from the lower level's.

The hyper-gradient is :func:`sobirl.estimators.hypergradient.estimate_hypergradient` with the chosen estimator.
Every sampled transition (follower updates, the upper level's trajectories, restart rollouts) is counted in the
``samples`` and ``samples_total`` columns of the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.algorithms.base import MethodConfig, OuterLoop
from sobirl.estimators.hypergradient import HypergradientEstimate, estimate_hypergradient
from sobirl.estimators.objectives import sampled_objective
from sobirl.estimators.sensitivity import ESTIMATORS, default_horizon
from sobirl.tabular.hypergrad import as_parameters
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.sampled import soft_q_learning
from sobirl.tabular.soft import soft_policy_iteration
from sobirl.validation import check_choice, check_int, check_range

LOWER_LEVELS = ("q-learning", "exact")
"""How the follower's policy is obtained: sample-based soft Q-learning, or the exact soft optimum (``P`` known)."""


@dataclass(frozen=True)
class ModelFreeConfig(MethodConfig):
    """Hyper-parameters shared by the model-free methods.

    Attributes:
        estimator: estimator of the exploration term, one of ``one-step``, ``monte-carlo``, ``continuation``,
            ``td-critic``, ``critic`` (``critic`` reads ``P``; ``td-critic`` learns from the sampled transitions).
        batch: draws of the upper level's data per gradient estimate (>= 1): preference pairs, or trajectories.
        horizon: length of sampled trajectories, rollouts and continuation windows (>= 1; 0 picks the smallest
            ``H`` with ``gamma^H <= 1e-4``).
        pairs_per_path: ``monte-carlo`` restarts per sampled trajectory (>= 1).
        lower: ``q-learning`` (sample-based follower) or ``exact`` (soft policy iteration with ``P`` known).
        lower_steps: ``q-learning`` updates of the whole Q table per outer iteration (>= 1).
        samples_per_pair: sampled successors per (s, a) in each ``q-learning`` update (>= 1).
        lower_lr: constant ``q-learning`` step size in (0, 1] (1 is empirical soft value iteration).
        tol: tolerance of the ``exact`` follower (scaled Bellman residual, > 0).
        seed: seed of the method's own random generator (>= 0).
    """

    estimator: str = "td-critic"
    batch: int = 1000
    horizon: int = 0
    pairs_per_path: int = 1
    lower: str = "q-learning"
    lower_steps: int = 10
    samples_per_pair: int = 16
    lower_lr: float = 0.5
    tol: float = 1e-10
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("estimator", self.estimator, ESTIMATORS)
        check_int("batch", self.batch, low=1)
        check_int("horizon", self.horizon, low=0)
        check_int("pairs_per_path", self.pairs_per_path, low=1)
        check_choice("lower", self.lower, LOWER_LEVELS)
        check_int("lower_steps", self.lower_steps, low=1)
        check_int("samples_per_pair", self.samples_per_pair, low=1)
        check_range("lower_lr", self.lower_lr, low=0.0, high=1.0, low_open=True)
        check_range("tol", self.tol, low=0.0, low_open=True)
        check_int("seed", self.seed, low=0)


class ModelFreeLoop(OuterLoop):
    """Base of the model-free methods: the follower (:meth:`follow`) and the estimate (:meth:`estimate`).

    Raises:
        ValueError: the problem has no sampled form of its upper objective (see
            :func:`sobirl.estimators.objectives.sampled_objective`).
    """

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: ModelFreeConfig) -> None:
        super().__init__(prob, x0, config)
        self.check_problem(prob)
        self.horizon = config.horizon or default_horizon(self.mdp.gamma)
        self.generator = torch.Generator(device=self.mdp.rho.device).manual_seed(config.seed)
        self.Q: torch.Tensor | None = None
        self.V: torch.Tensor | None = None
        self.samples_total = 0

    @classmethod
    def check_problem(cls, prob: BilevelProblem) -> None:
        sampled_objective(prob, horizon=1)

    def follow(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The follower's policy at ``x`` (warm-started) and the transitions it sampled."""
        cfg: ModelFreeConfig = self.config  # type: ignore[assignment]
        r = self.prob.reward(as_parameters(x)).detach()
        if cfg.lower == "exact":
            solution = soft_policy_iteration(self.mdp, r, cfg.tol, V0=self.V)
            self.V = solution.V
            return solution.pi, 0
        sampled = soft_q_learning(
            self.mdp,
            r,
            Q0=self.Q,
            steps=cfg.lower_steps,
            samples_per_pair=cfg.samples_per_pair,
            lr=cfg.lower_lr,
            generator=self.generator,
        )
        self.Q = sampled.Q
        return sampled.pi, sampled.transitions

    def estimate(self, x: torch.Tensor, pi: torch.Tensor, generator: torch.Generator) -> HypergradientEstimate:
        """The model-free hyper-gradient estimate at ``x`` under the follower's ``pi``."""
        cfg: ModelFreeConfig = self.config  # type: ignore[assignment]
        return estimate_hypergradient(
            self.prob,
            x,
            pi,
            batch=cfg.batch,
            estimator=cfg.estimator,
            generator=generator,
            horizon=self.horizon,
            pairs_per_path=cfg.pairs_per_path,
        )

    def count(self, samples: int) -> dict[str, float]:
        """Add ``samples`` to the total; the two sample columns of a history row."""
        self.samples_total += samples
        return {"samples": float(samples), "samples_total": float(self.samples_total)}
