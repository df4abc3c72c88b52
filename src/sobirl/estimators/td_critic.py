"""The sensitivity critic learned by temporal differences from the follower's transitions.

The sensitivity critic is the Q-function of the vector reward ``J = d r_x / dx``:
``D(s, a) = dQ(s, a)/dx = J(s, a) + gamma sum_s' P(s'|s, a) sum_a' pi(a'|s') D(s', a')``. Batch TD(0) with
expected targets on a set of sampled transitions ``(s, a, s')`` converges to the fixed point of the same equation
with ``P`` replaced by the empirical transition frequencies ``P^`` (for tabular features this fixed point is
LSTD's solution). ``J`` is never formed: the exploration term is linear in ``D``, so, as for the exact critic
(:func:`sobirl.estimators.sensitivity.exploration_weights`), only the adjoint vector is learned,

    W = y + gamma pi * z,    z = P^T y + gamma P^_pi^T z,    (P^_pi^T z)(s') = sum_{s,a} P^(s'|s,a) pi(a|s) z(s)

iterated from ``z = 0`` to its fixed point (each sweep is one expected-TD update of every visited pair, applied to
the adjoint). Pairs never seen with a successor have an empty row of ``P^`` (their future is dropped: a bias that
vanishes as the transitions cover what the visits reach); a terminal state's pairs have no successor by definition.
"""

from __future__ import annotations

import math

import torch

from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.tabular.sampler import Trajectories

TD_TOL = 1e-10
"""Sweeps stop when ``max |z_{k+1} - z_k| <= TD_TOL * max |z_{k+1}|`` (the fixed point to about float64 noise)."""


def td_critic(mdp: TabularMDP, pi: torch.Tensor, y: torch.Tensor, *, paths: Trajectories) -> torch.Tensor:
    """``W = y + gamma pi * z`` with ``z`` the batch-TD fixed point on the transitions of ``paths`` (module docstring).

    Args:
        mdp: the MDP (its ``gamma`` and ``terminal`` mask; ``P`` is not read).
        pi: the follower's policy ``(S, A)``.
        y: the pair table ``sum_i w_i (e_{s_i a_i} - pi(.|s_i) e_{s_i})``, ``(S, A)``.
        paths: the follower's trajectories; each step followed by another inside its trajectory is a transition.

    Returns:
        float64 ``(S, A)``.
    """
    S, A = mdp.shape
    if mdp.gamma == 0.0:
        return y
    step = paths.alive[:, :-1] & paths.alive[:, 1:]
    rows = (paths.states[:, :-1] * A + paths.actions[:, :-1])[step]
    successors = paths.states[:, 1:][step]
    key = torch.unique(rows * S + successors, return_counts=True)
    rows, cols, counts = key[0] // S, key[0] % S, key[1].to(DTYPE)
    visits = torch.zeros(S * A, dtype=DTYPE, device=pi.device).index_add_(0, rows, counts)
    freq = counts / visits[rows]  # P^(s'|s, a) for every observed (s, a, s')

    def pushforward(v: torch.Tensor) -> torch.Tensor:
        """``(P^T v)(s') = sum_{s,a} P^(s'|s,a) v(s, a)`` for a flat ``(S*A,)`` vector."""
        return torch.zeros(S, dtype=DTYPE, device=v.device).index_add_(0, cols, freq * v[rows])

    flat_pi = pi.reshape(-1)
    b = pushforward(y.reshape(-1))
    z = b
    # gamma^k <= TD_TOL after this many sweeps; the loop usually stops earlier on the relative change.
    for _ in range(math.ceil(math.log(TD_TOL) / math.log(mdp.gamma)) + 1):
        z_next = b + mdp.gamma * pushforward(flat_pi * z.repeat_interleave(A))
        change = (z_next - z).abs().max()
        z = z_next
        if change <= TD_TOL * z.abs().max():
            break
    return y + mdp.gamma * pi * z.unsqueeze(1)
