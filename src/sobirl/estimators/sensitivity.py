"""Estimators of the exploration term of model-free SoBiRL (docs/math.md, section 8).

For a batch of visited pairs ``(s_i, a_i)`` with scalar weights ``w_i`` (e.g. the upper loss times a discount),
at the follower's policy ``pi`` and reward ``r_x``, every estimator targets

    E = sum_i w_i ( dQ(s_i, a_i)/dx - dV(s_i)/dx )                                   (a vector in R^n)

    dQ(s, a)/dx = E[ sum_k gamma^k J(s_k, a_k) | s_0 = s, a_0 = a, pi ],   J = d r_x / dx  ((S, A) -> R^n)
    dV(s)/dx    = sum_a pi(a|s) dQ(s, a)/dx

(a trajectory ends after the action taken in a terminal state). ``E`` is linear in ``J``, so every estimator
builds one ``(S, A)`` weight table ``W`` with tensor operations (no Python loop over samples,
:func:`exploration_weights`) and ``E ~ J^T W = sum_{s,a} W(s, a) J(s, a)`` is ONE vector-Jacobian product through
``r_x`` (:func:`exploration_term`); ``J`` itself is never formed. With ``y = sum_i w_i (e_{s_i a_i} - pi(.|s_i)
e_{s_i})`` (an ``(S, A)`` table), the estimators, cheapest first (:data:`ESTIMATORS`):

- ``"one-step"``: ``W = y``, i.e. ``sum_i w_i (J(s_i,a_i) - sum_a pi(a|s_i) J(s_i,a))``. It drops the
  gamma-propagated terms: exact when ``gamma = 0``, biased otherwise. No samples.
- ``"monte-carlo"``: coupled restart rollouts from ``(s_i, a_i)`` and ``(s_i, a'_i ~ pi)``
  (:func:`sobirl.estimators.rollouts.monte_carlo`). Unbiased up to the truncation at ``horizon``; needs restarts
  from arbitrary ``(s, a)``.
- ``"continuation"``: every-visit averages of the discounted visit counts of the ``horizon`` steps that follow each
  visit in the follower's own trajectories ``paths`` (:func:`sobirl.estimators.rollouts.continuation`). No restarts,
  no extra samples; consistent.
- ``"td-critic"``: the sensitivity critic learned by batch TD(0) on the transitions of ``paths``
  (:func:`sobirl.estimators.td_critic.td_critic`). No restarts, no extra samples; consistent.
- ``"critic"``: the exact tabular sensitivity critic (``P`` known). From ``dQ = J + gamma P dV`` and
  ``dV = (I - gamma P_pi)^{-1} sum_a pi J``,

      W = y + gamma pi * z,     (I - gamma P_pi)^T z = P^T y,     (P^T y)(s') = sum_{s,a} P(s'|s,a) y(s,a)

  one adjoint solve (:func:`sobirl.tabular.linear.solve_adjoint`), exact expectations, no samples.
"""

from __future__ import annotations

import math

import torch

from sobirl.estimators.batch import check_batch, pair_table
from sobirl.estimators.rollouts import continuation, monte_carlo
from sobirl.estimators.td_critic import td_critic
from sobirl.tabular.hypergrad import as_parameters, reward_vjp
from sobirl.tabular.linear import solve_adjoint
from sobirl.tabular.mdp import TabularMDP
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.sampler import Trajectories
from sobirl.validation import check_choice, check_int, check_range

ESTIMATORS = ("one-step", "monte-carlo", "continuation", "td-critic", "critic")
"""Names accepted by :func:`exploration_weights`, cheapest first."""

RESTARTING = ("monte-carlo",)
"""Estimators that restart rollouts from arbitrary ``(s, a)`` pairs."""

FROM_PATHS = ("continuation", "td-critic")
"""Estimators that learn from the follower's trajectories (the ``paths`` argument)."""

TRUNCATION = 1e-4
"""The default ``horizon`` is the smallest ``H`` with ``gamma^H <= TRUNCATION`` (see :func:`default_horizon`)."""


def default_horizon(gamma: float) -> int:
    """The smallest ``H >= 1`` with ``gamma^H <= TRUNCATION``: 88 steps at gamma = 0.9, 917 at gamma = 0.99."""
    check_range("gamma", gamma, low=0.0, high=1.0, high_open=True)
    if gamma == 0.0:
        return 1
    return max(1, math.ceil(math.log(TRUNCATION) / math.log(gamma)))


def exploration_weights(
    mdp: TabularMDP,
    pi: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
    *,
    estimator: str,
    paths: Trajectories | None = None,
    horizon: int | None = None,
    rollouts: int = 1,
    pairs: int | None = None,
    generator: torch.Generator | None = None,
    restarts: bool = True,
) -> tuple[torch.Tensor, int]:
    """The ``(S, A)`` table ``W`` with ``E ~ J^T W`` (module docstring), by the named estimator.

    Args:
        mdp: the follower's MDP.
        pi: the follower's policy ``(S, A)``.
        states: visited states ``s_i``, integer ``(m,)``.
        actions: visited actions ``a_i``, integer ``(m,)``.
        weights: scalar weights ``w_i``, floating ``(m,)``.
        estimator: one of :data:`ESTIMATORS`.
        paths: the follower's trajectories, required by ``"continuation"`` and ``"td-critic"`` (ignored otherwise).
        horizon: rollout length of ``"monte-carlo"`` and continuation length of ``"continuation"`` (>= 1);
            :func:`default_horizon` of the MDP's gamma when None.
        rollouts: ``"monte-carlo"`` restart pairs per visit (>= 1).
        pairs: ``"monte-carlo"`` only: the total number of restart pairs (>= 1) drawn over the visits with
            probability proportional to ``|w_i|`` instead of ``rollouts`` per visit; ``rollouts`` must then be 1.
        generator: randomness of ``"monte-carlo"``; when None, one seeded from torch's global generator.
        restarts: whether the environment can restart from an arbitrary ``(s, a)`` (required by ``"monte-carlo"``;
            a :class:`~sobirl.tabular.TabularMDP` always can).

    Returns:
        ``(W, n_transitions)``: float64 ``(S, A)`` and the transitions sampled for it (0 unless ``"monte-carlo"``).

    Raises:
        ValueError / TypeError: unknown estimator (the message lists the valid ones), ``horizon``, ``rollouts`` or
            ``pairs`` < 1, both ``rollouts`` and ``pairs`` set, inputs of mismatched lengths or out of range,
            ``"monte-carlo"`` without restarts, or ``"continuation"`` / ``"td-critic"`` without ``paths``.
    """
    check_choice("estimator", estimator, ESTIMATORS)
    horizon = default_horizon(mdp.gamma) if horizon is None else check_int("horizon", horizon, low=1)
    check_int("rollouts", rollouts, low=1)
    if pairs is not None:
        check_int("pairs", pairs, low=1)
        if rollouts != 1:
            raise ValueError(f"give either rollouts (per visit) or pairs (in all), not both: rollouts = {rollouts}")
    if estimator in RESTARTING and not restarts:
        raise ValueError(
            f"estimator {estimator!r} restarts rollouts from arbitrary (s, a) pairs, which this environment does "
            f"not allow (restarts=False); use one of {', '.join(e for e in ESTIMATORS if e not in RESTARTING)}"
        )
    if estimator in FROM_PATHS and not isinstance(paths, Trajectories):
        raise ValueError(
            f"estimator {estimator!r} learns from the follower's trajectories: pass paths (a Trajectories), "
            f"got {type(paths).__name__}"
        )
    pi, states, actions, weights = check_batch(mdp, pi, states, actions, weights)
    if estimator == "monte-carlo":
        if generator is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
            generator = torch.Generator(device=pi.device).manual_seed(seed)
        return monte_carlo(
            mdp, pi, states, actions, weights, horizon=horizon, rollouts=rollouts, pairs=pairs, generator=generator
        )
    if estimator == "continuation":
        return continuation(mdp, pi, states, actions, weights, paths=paths, horizon=horizon), 0
    y = pair_table(pi, states, actions, weights)
    if estimator == "td-critic":
        return td_critic(mdp, pi, y, paths=paths), 0
    if estimator == "critic" and mdp.gamma > 0.0:
        z = solve_adjoint(mdp, pi, mdp.pushforward(y))
        return y + mdp.gamma * pi * z.unsqueeze(1), 0
    return y, 0


def exploration_term(
    prob: BilevelProblem,
    x: torch.Tensor,
    pi: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
    **options: object,
) -> tuple[torch.Tensor, int]:
    """Estimate ``E = sum_i w_i (dQ(s_i, a_i)/dx - dV(s_i)/dx)`` as ``J^T W``: ONE reward evaluation and ONE
    backward pass through ``r_x = prob.reward(x)``.

    Args:
        prob: the bilevel problem (its MDP and reward).
        x: leader parameters, 1-D floating tensor.
        pi, states, actions, weights: as in :func:`exploration_weights`.
        **options: the keyword arguments of :func:`exploration_weights` (``estimator`` is required).

    Returns:
        ``(E, n_transitions)``: float64 tensor shaped like ``x`` and the transitions sampled.
    """
    W, n_transitions = exploration_weights(prob.mdp, pi, states, actions, weights, **options)  # type: ignore[arg-type]
    x = as_parameters(x)
    return reward_vjp(prob.reward(x), x, W), n_transitions
