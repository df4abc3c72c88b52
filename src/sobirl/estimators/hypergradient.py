"""The model-free hyper-gradient from sampled trajectories (docs/math.md, section 5):

    grad phi(x) = E[ grad_x l ] + (1/tau) E[ sum_{visits} omega_t (dQ(s_t, a_t)/dx - dV(s_t)/dx) ]

(exploitation + exploration). :func:`estimate_hypergradient` draws ``batch`` draws of the upper level's data from
the follower (:mod:`sobirl.estimators.objectives`), builds the exploration weight table ``W`` with the chosen
estimator (:mod:`sobirl.estimators.sensitivity`), and differentiates ONE scalar surrogate

    L(x) = mean_j l(data_j; x) + (1/tau) sum_{s,a} W(s, a) r_x(s, a)        (W and omega detached)

whose gradient is the estimate. Nothing is formed per sample: no per-sample Jacobian, no per-sample backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.estimators.objectives import sampled_objective
from sobirl.estimators.sensitivity import ESTIMATORS, default_horizon, exploration_weights
from sobirl.tabular.hypergrad import as_parameters
from sobirl.tabular.problem import BilevelProblem
from sobirl.validation import check_choice, check_int


@dataclass(frozen=True)
class HypergradientEstimate:
    """One model-free estimate.

    Attributes:
        grad: the estimate of ``grad phi(x)``, float64 shaped like ``x``.
        loss: the mean sampled loss, an unbiased estimate of ``f(x, pi)`` (up to truncation).
        transitions: every transition sampled for it (the data's trajectories and any restart rollouts).
    """

    grad: torch.Tensor
    loss: float
    transitions: int


def estimate_hypergradient(
    prob: BilevelProblem,
    x: torch.Tensor,
    pi: torch.Tensor,
    *,
    batch: int,
    estimator: str,
    generator: torch.Generator,
    horizon: int | None = None,
    pairs_per_path: int = 1,
    restarts: bool = True,
) -> HypergradientEstimate:
    """Estimate ``grad phi(x)`` from ``batch`` draws of the follower's data under ``pi`` (module docstring).

    Args:
        prob: a problem with a sampled upper objective (see :func:`sobirl.estimators.objectives.sampled_objective`).
        x: leader parameters, 1-D floating tensor.
        pi: the follower's policy ``(S, A)`` (the soft optimum at ``x``, or a sample-based approximation).
        batch: number of draws (>= 1): preference pairs, or trajectories of the leader's value.
        estimator: one of :data:`~sobirl.estimators.ESTIMATORS`.
        generator: the source of randomness (same seed, same estimate).
        horizon: length of the leader's trajectories, of ``"monte-carlo"`` rollouts and of ``"continuation"``
            windows (>= 1); :func:`~sobirl.estimators.default_horizon` of the MDP's gamma when None.
        pairs_per_path: ``"monte-carlo"``: restart pairs per sampled trajectory (>= 1), drawn over its visits
            with probability proportional to ``|omega|``.
        restarts: whether the environment can restart from an arbitrary ``(s, a)`` (``"monte-carlo"`` needs it).

    Returns:
        :class:`HypergradientEstimate`.

    Raises:
        ValueError / TypeError: ``batch``, ``horizon`` or ``pairs_per_path`` < 1, an unknown estimator (the valid
            ones are listed), ``"monte-carlo"`` without restarts, or a problem without a sampled objective.
    """
    check_int("batch", batch, low=1)
    check_choice("estimator", estimator, ESTIMATORS)
    check_int("pairs_per_path", pairs_per_path, low=1)
    mdp = prob.mdp
    horizon = default_horizon(mdp.gamma) if horizon is None else check_int("horizon", horizon, low=1)
    objective = sampled_objective(prob, horizon=horizon)
    continuation = horizon if estimator == "continuation" else 0
    sample = objective.sample(mdp, pi.detach(), batch, generator, continuation=continuation)

    x = as_parameters(x)
    r = prob.reward(x)
    losses, omega = objective.evaluate(x, r, sample)
    paths = sample.paths
    visits = omega != 0
    W, rollout_transitions = exploration_weights(
        mdp,
        pi,
        paths.states[visits],
        paths.actions[visits],
        omega[visits] / batch,
        estimator=estimator,
        paths=paths,
        horizon=horizon,
        pairs=pairs_per_path * paths.states.shape[0] if estimator == "monte-carlo" else None,
        generator=generator,
        restarts=restarts,
    )
    surrogate = losses.mean() + (W * r).sum() / mdp.tau
    grad = None
    if surrogate.requires_grad:
        (grad,) = torch.autograd.grad(surrogate, x, allow_unused=True)
    grad = torch.zeros_like(x) if grad is None else grad
    return HypergradientEstimate(grad.detach(), losses.mean().item(), paths.n_transitions + rollout_transitions)
