"""Estimators of the exploration term of model-free SoBiRL (docs/math.md, section 8).

For a batch of visited pairs ``(s_i, a_i)`` with scalar weights ``w_i`` (e.g. the upper loss times a discount),
at the follower's policy ``pi`` and reward ``r_x``, every estimator targets

    E = sum_i w_i ( dQ(s_i, a_i)/dx - dV(s_i)/dx )                                   (a vector in R^n)

    dQ(s, a)/dx = E[ sum_k gamma^k J(s_k, a_k) | s_0 = s, a_0 = a, pi ],   J = d r_x / dx  ((S, A) -> R^n)
    dV(s)/dx    = sum_a pi(a|s) dQ(s, a)/dx

(a trajectory ends after the action taken in a terminal state). ``E`` is linear in ``J``, so every estimator
builds one ``(S, A)`` weight table ``W`` with tensor operations (no Python loop over samples) and returns
``E ~ J^T W = sum_{s,a} W(s, a) J(s, a)`` by ONE vector-Jacobian product through ``r_x``; ``J`` itself is never
formed. With ``y = sum_i w_i (e_{s_i a_i} - pi(.|s_i) e_{s_i})`` (an ``(S, A)`` table):

- ``"one-step"`` (:func:`one_step`): ``W = y``, i.e. ``sum_i w_i (J(s_i,a_i) - sum_a pi(a|s_i) J(s_i,a))``. It
  drops the gamma-propagated terms: exact when ``gamma = 0``, biased otherwise. No samples.
- ``"monte-carlo"`` (:func:`monte_carlo`): ``rollouts`` trajectories of length ``horizon`` from ``(s_i, a_i)``
  and as many from ``(s_i, a'_i)``, ``a'_i ~ pi(.|s_i)``, with common random numbers between the two (the
  sampler's ``coupled_blocks=2``; pairs with ``a'_i = a_i`` then give identical rollouts and are skipped).
  ``W = sum_i (w_i / rollouts) (N_i^+ - N_i^-)`` with ``N`` the discounted visit counts. Unbiased up to the
  truncation at ``horizon`` (relative bias of order ``gamma^horizon``); needs restarts from arbitrary
  ``(s, a)``, which a :class:`~sobirl.tabular.TabularMDP` always allows.
- ``"critic"`` (:func:`critic`): the tabular sensitivity critic ``D = dQ/dx`` in closed form. From
  ``dQ = J + gamma P dV`` and ``dV = (I - gamma P_pi)^{-1} sum_a pi J``,

      W = y + gamma pi * z,     (I - gamma P_pi)^T z = P^T y,     (P^T y)(s') = sum_{s,a} P(s'|s,a) y(s,a)

  one adjoint solve (:func:`sobirl.tabular.linear.solve_adjoint`), exact expectations, no samples. The learned
  version (a vector-valued critic trained by TD on the vector reward ``J``) is a later step.

Every function returns ``(E, n_transitions)``: a float64 tensor shaped like ``x`` and the number of transitions
it sampled (0 for the exact ones).
"""

from __future__ import annotations

import torch

from sobirl.envs.sampler import sample_actions, sample_trajectories
from sobirl.tabular.hypergrad import as_parameters, reward_vjp
from sobirl.tabular.linear import solve_adjoint
from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.tabular.problem import BilevelProblem
from sobirl.validation import check_choice, check_finite, check_int

ESTIMATORS = ("one-step", "monte-carlo", "critic")
"""Names accepted by :func:`exploration_term`, cheapest first."""

HORIZON = 100
"""Default rollout length of ``"monte-carlo"`` (truncation bias of order ``gamma^H``: 3e-5 at gamma = 0.9)."""


def exploration_term(
    prob: BilevelProblem,
    x: torch.Tensor,
    pi: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
    *,
    estimator: str,
    horizon: int = HORIZON,
    rollouts: int = 1,
    generator: torch.Generator | None = None,
    restarts: bool = True,
) -> tuple[torch.Tensor, int]:
    """Estimate ``E = sum_i w_i (dQ(s_i, a_i)/dx - dV(s_i)/dx)`` (module docstring) with the named estimator.

    Args:
        prob: the bilevel problem (its MDP and ``r_x = prob.reward(x)``).
        x: leader parameters, 1-D floating tensor.
        pi: the follower's policy ``(S, A)``.
        states: visited states ``s_i``, integer ``(m,)``.
        actions: visited actions ``a_i``, integer ``(m,)``.
        weights: scalar weights ``w_i``, floating ``(m,)``.
        estimator: one of :data:`ESTIMATORS`.
        horizon: rollout length (>= 1; ``"monte-carlo"`` only, validated always).
        rollouts: rollouts per pair and per sign (>= 1; ``"monte-carlo"`` only, validated always).
        generator: randomness of ``"monte-carlo"``; when None, one seeded from torch's global generator.
        restarts: whether the environment can restart from an arbitrary ``(s, a)`` (required by
            ``"monte-carlo"``; a :class:`~sobirl.tabular.TabularMDP` always can).

    Returns:
        ``(E, n_transitions)``: float64 tensor shaped like ``x`` and the transitions sampled.

    Raises:
        ValueError / TypeError: unknown estimator (the message lists the valid ones), ``horizon`` or
            ``rollouts`` < 1, inputs of mismatched lengths or out of range, or ``"monte-carlo"`` without restarts.
    """
    check_choice("estimator", estimator, ESTIMATORS)
    check_int("horizon", horizon, low=1)
    check_int("rollouts", rollouts, low=1)
    if estimator == "one-step":
        return one_step(prob, x, pi, states, actions, weights)
    if estimator == "critic":
        return critic(prob, x, pi, states, actions, weights)
    return monte_carlo(
        prob,
        x,
        pi,
        states,
        actions,
        weights,
        horizon=horizon,
        rollouts=rollouts,
        generator=generator,
        restarts=restarts,
    )


def one_step(
    prob: BilevelProblem,
    x: torch.Tensor,
    pi: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, int]:
    """``sum_i w_i (J(s_i, a_i) - sum_a pi(a|s_i) J(s_i, a))``: ``J^T y``, exact when gamma = 0 (no samples).

    Arguments as in :func:`exploration_term`; returns ``(E, 0)``.
    """
    pi, states, actions, weights = _check_batch(prob.mdp, pi, states, actions, weights)
    return _vjp(prob, x, _pair_table(pi, states, actions, weights)), 0


def critic(
    prob: BilevelProblem,
    x: torch.Tensor,
    pi: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, int]:
    """The exact ``E`` through the tabular sensitivity critic: ``J^T (y + gamma pi * z)``.

    ``y = sum_i w_i (e_{s_i a_i} - pi(.|s_i) e_{s_i})`` and ``(I - gamma P_pi)^T z = P^T y`` (one adjoint solve;
    dense or sparse ``P``). Exact expectations, no samples; a TD-learned critic is a later step.
    Arguments as in :func:`exploration_term`; returns ``(E, 0)``.
    """
    mdp = prob.mdp
    pi, states, actions, weights = _check_batch(mdp, pi, states, actions, weights)
    y = _pair_table(pi, states, actions, weights)
    W = y
    if mdp.gamma > 0.0:
        z = solve_adjoint(mdp, pi, mdp.pushforward(y))
        W = y + mdp.gamma * pi * z.unsqueeze(1)
    return _vjp(prob, x, W), 0


def monte_carlo(
    prob: BilevelProblem,
    x: torch.Tensor,
    pi: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
    *,
    horizon: int = HORIZON,
    rollouts: int = 1,
    generator: torch.Generator | None = None,
    restarts: bool = True,
) -> tuple[torch.Tensor, int]:
    """Restart-based Monte-Carlo estimate of ``E``: ``J^T sum_i (w_i / R) (N_i^+ - N_i^-)``.

    ``N_i^+`` / ``N_i^-``: discounted visit counts ``sum_t gamma^t 1{(s_t, a_t) = (s, a)}`` of ``R = rollouts``
    trajectories of length ``horizon`` from ``(s_i, a_i)`` / from ``(s_i, a'_i)``, ``a'_i ~ pi(.|s_i)`` (one
    ``a'`` per rollout), coupled by common random numbers. Unbiased for the ``horizon``-truncated ``E``.

    Args:
        prob, x, pi, states, actions, weights: as in :func:`exploration_term`.
        horizon: rollout length (>= 1).
        rollouts: rollouts per pair and per sign (>= 1).
        generator: the source of randomness; when None, one seeded from torch's global generator.
        restarts: False declares an environment that cannot restart from an arbitrary ``(s, a)``: raises.

    Returns:
        ``(E, n_transitions)``: the estimate and the number of transitions of all rollouts.
    """
    check_int("horizon", horizon, low=1)
    check_int("rollouts", rollouts, low=1)
    if not restarts:
        raise ValueError(
            "estimator 'monte-carlo' restarts rollouts from arbitrary (s, a) pairs, which this environment does "
            "not allow (restarts=False); use 'one-step' (biased for gamma > 0) or 'critic' instead"
        )
    mdp = prob.mdp
    pi, states, actions, weights = _check_batch(mdp, pi, states, actions, weights)
    if generator is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator(device=pi.device).manual_seed(seed)
    s = states.repeat(rollouts)
    a = actions.repeat(rollouts)
    w = weights.repeat(rollouts) / rollouts
    a_other = sample_actions(pi, s, generator)
    # Coupled rollouts from (s, a) and (s, a) coincide: their difference is exactly 0, skip them.
    differ = a_other != a
    s, a, a_other, w = s[differ], a[differ], a_other[differ], w[differ]
    m = s.numel()
    if m == 0:
        return _vjp(prob, x, torch.zeros_like(pi)), 0
    paths = sample_trajectories(
        mdp,
        pi,
        2 * m,
        horizon,
        start_states=s.repeat(2),
        start_actions=torch.cat([a, a_other]),
        generator=generator,
        coupled_blocks=2,
    )
    W = paths.occupancy(mdp.gamma, mdp.shape, torch.cat([w, -w]))
    return _vjp(prob, x, W), paths.n_transitions


def _pair_table(pi: torch.Tensor, states: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``y = sum_i w_i (e_{s_i a_i} - pi(.|s_i) e_{s_i})`` as an ``(S, A)`` table (two scatter-adds)."""
    S, A = pi.shape
    y = torch.zeros(S * A, dtype=DTYPE, device=pi.device).index_add_(0, states * A + actions, weights).view(S, A)
    per_state = torch.zeros(S, dtype=DTYPE, device=pi.device).index_add_(0, states, weights)
    return y - pi * per_state.unsqueeze(1)


def _vjp(prob: BilevelProblem, x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``J^T W = sum_{s,a} W(s, a) d r_x(s, a)/dx``: one reward evaluation, ONE backward through it."""
    x = as_parameters(x)
    return reward_vjp(prob.reward(x), x, W)


def _check_batch(
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
