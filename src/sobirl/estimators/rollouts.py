"""Rollout-based estimators of the exploration weight table: restart Monte-Carlo and continuation-only.

Both return an ``(S, A)`` table ``W`` with ``sum_i w_i (dQ(s_i, a_i)/dx - dV(s_i)/dx) ~ J^T W`` (see
:mod:`sobirl.estimators.sensitivity`) and the number of transitions they sampled.

- :func:`monte_carlo` restarts, for each visit, one rollout from ``(s_i, b)`` for every action ``b``, coupled by
  common random numbers (:func:`coupled_occupancy`): ``W = sum_i (w_i / R) sum_b (1{b = a_i} - pi(b|s_i)) N_{i,b}``
  with ``N`` the discounted visit counts (``R`` restarts per visit). Unbiased up to the truncation at ``horizon``
  (relative bias of order ``gamma^horizon``).
- :func:`continuation` never restarts: it reads the follower's own trajectories. The discounted visit counts of the
  ``horizon`` steps that follow each visit estimate ``dQ(s, a)/dx = J^T N_{sa}`` for that visit's pair; averaging
  them over every visit of ``(s, a)`` (every-visit Monte-Carlo) and of ``s`` gives

      N^_{sa} = mean over visits v of (s, a) of C_v,     N^_s = mean over visits v of s of C_v,
      W = sum_i w_i (N^_{s_i a_i} - N^_{s_i}) = sum_v c_v C_v,   c_v = a(s_v, a_v) / n_{s_v a_v} - b(s_v) / n_{s_v}

  with ``a(s, a) = sum_i w_i 1{(s_i, a_i) = (s, a)}``, ``b(s) = sum_i w_i 1{s_i = s}`` and ``n`` the visit counts.
  On-policy visits of ``s`` take ``a ~ pi(.|s)``, so ``N^_s`` estimates ``dV(s)/dx`` without a restart. Only visits
  whose ``horizon`` following steps lie inside the sampled length count (a window may end early at a terminal
  state). The estimate is
  consistent, not unbiased: pairs never visited contribute nothing, and a visit's own continuation enters its
  average (a bias of order ``1/n_{sa}``).
"""

from __future__ import annotations

import torch

from sobirl.estimators.batch import state_sums
from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.tabular.sampler import Trajectories, sample_trajectories


def monte_carlo(
    mdp: TabularMDP,
    pi: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
    *,
    horizon: int,
    rollouts: int,
    pairs: int | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, int]:
    """Restart-based Monte-Carlo weight table (module docstring); inputs already validated.

    Each restart from visit ``i`` rolls out from ``(s_i, b)`` for EVERY action ``b`` with common random numbers
    and weights them ``w_i (1{b = a_i} - pi(b|s_i))``: the expectation over the first action of ``dV(s_i)`` is
    exact rather than sampled, and a near-deterministic policy gives near-zero weights instead of rare large ones.

    Args:
        mdp, pi, states, actions, weights: the MDP, the policy and the visits with their weights.
        horizon: rollout length.
        rollouts: restarts per visit (when ``pairs`` is None).
        pairs: when set, the total number of restarts instead, each from a visit drawn with probability
            proportional to ``|w_i| (1 - pi(a_i|s_i))`` (the size of its weights) and reweighted to stay unbiased;
            the cost no longer grows with the number of visits.
        generator: the source of randomness.

    Returns:
        ``(W, n_transitions)``.
    """
    A = mdp.n_actions
    if pairs is None:
        s, a, w = states.repeat(rollouts), actions.repeat(rollouts), weights.repeat(rollouts) / rollouts
    else:
        size = weights.abs() * (1.0 - pi[states, actions])
        total = size.sum()
        if total == 0:
            return torch.zeros_like(pi), 0
        idx = torch.multinomial(size, pairs, replacement=True, generator=generator)
        s, a, w = states[idx], actions[idx], weights[idx] * total / (size[idx] * pairs)
    coef = w.unsqueeze(1) * (torch.nn.functional.one_hot(a, A).to(pi.dtype) - pi[s])  # (m, A)
    starts = torch.arange(A, device=pi.device).unsqueeze(1).expand(A, s.numel())
    return coupled_occupancy(mdp, pi, s, starts, coef.T, horizon, generator)


def coupled_occupancy(
    mdp: TabularMDP,
    pi: torch.Tensor,
    states: torch.Tensor,
    start_actions: torch.Tensor,
    coef: torch.Tensor,
    horizon: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, int]:
    """``W = sum_i sum_b coef[b, i] N_{i,b}``: discounted visit counts of ``k`` rollouts per state ``s_i``, from
    ``(s_i, start_actions[b, i])``, ``b < k``, that share their random numbers (so they coincide from the moment
    they meet and their weighted differences have a small variance).

    ``E[W] = sum_{i,b} coef[b, i] dQ(s_i, start_actions[b, i])`` in ``J``-free form, up to the truncation at
    ``horizon``. States whose coefficients are all zero are not rolled out.

    Args:
        states: ``(m,)``.
        start_actions: ``(k, m)``.
        coef: ``(k, m)``.

    Returns:
        ``(W, n_transitions)``: float64 ``(S, A)`` and the transitions of all rollouts.
    """
    active = (coef != 0).any(dim=0)
    s, start_actions, coef = states[active], start_actions[:, active], coef[:, active]
    k, m = coef.shape
    if m == 0:
        return torch.zeros_like(pi), 0
    paths = sample_trajectories(
        mdp,
        pi,
        k * m,
        horizon,
        start_states=s.repeat(k),
        start_actions=start_actions.reshape(-1),
        generator=generator,
        coupled_blocks=k,
    )
    return paths.occupancy(mdp.gamma, mdp.shape, coef.reshape(-1)), paths.n_transitions


def continuation(
    mdp: TabularMDP,
    pi: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
    *,
    paths: Trajectories,
    horizon: int,
) -> torch.Tensor:
    """Continuation-only weight table (module docstring) from the follower's trajectories ``paths``.

    Samples nothing: the caller sampled ``paths`` (the follower's own experience, e.g. the trajectories the
    visits came from, run ``horizon`` steps past them).
    """
    S, A = mdp.shape
    gamma = mdp.gamma
    n_paths, length = paths.states.shape
    t = torch.arange(length, device=pi.device)
    # Only visits whose whole window lies inside the sampled length count: also keeping late visits of trajectories
    # that happened to end early would select continuations by their future (a bias).
    complete = paths.alive & (t + horizon <= length).unsqueeze(0)
    flat = paths.states * A + paths.actions
    n_sa = torch.bincount(flat[complete], minlength=S * A).to(DTYPE)
    n_s = torch.bincount(paths.states[complete], minlength=S).to(DTYPE)
    a_sa = torch.zeros(S * A, dtype=DTYPE, device=pi.device).index_add_(0, states * A + actions, weights)
    b_s = state_sums(states, weights, S)
    per_pair = torch.where(n_sa > 0, a_sa / n_sa.clamp(min=1.0), 0.0)
    per_state = torch.where(n_s > 0, b_s / n_s.clamp(min=1.0), 0.0)
    c = (per_pair[flat] - per_state[paths.states]) * complete  # (n_paths, length): c_v at each counted visit

    # A_t = sum_{t - horizon < h <= t} gamma^(t - h) c_h: each visit's coefficient spread over its next `horizon`
    # steps, by a recursion over time (vectorised over trajectories).
    alive = paths.alive.to(DTYPE)
    fade = gamma**horizon
    W = torch.zeros(S * A, dtype=DTYPE, device=pi.device)
    spread = torch.zeros(n_paths, dtype=DTYPE, device=pi.device)
    for step in range(length):
        spread = gamma * spread + c[:, step]
        if step >= horizon:
            spread = spread - fade * c[:, step - horizon]
        W.index_add_(0, flat[:, step], spread * alive[:, step])
    return W.view(S, A)
