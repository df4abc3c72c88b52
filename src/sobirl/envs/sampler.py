"""Batched trajectory sampling in a tabular MDP: ``n`` rollouts advance together, one tensor step per time step.

    s_0 ~ rho (or given),  a_0 ~ pi(.|s_0) (or given),  s_{t+1} ~ P(.|s_t, a_t),  a_{t+1} ~ pi(.|s_{t+1})

A trajectory ends after the action taken in a terminal state (its reward is collected, nothing follows), or at
the horizon. ``alive[i, t]`` marks the steps that happened; later entries hold valid but meaningless indices.

Every draw is an inverse-CDF lookup with ``torch.searchsorted`` (``right=True``, so zero-probability entries are
never chosen):

- actions and start states: cumulative sums of ``pi`` (per state) and of ``rho``;
- next states, dense ``P``: the per-row cumulative sums ``cumsum_s' P(s'|s, a)``;
- next states, sparse ``P`` (CSR ``(S*A, S)``, never densified): ONE cumulative sum ``c`` of the stored values;
  row ``r = s*A + a`` owns ``c[crow[r]:crow[r+1]]``, and ``u ~ U[0, 1)`` is mapped to
  ``c[crow[r]-1] + u * (c[crow[r+1]-1] - c[crow[r]-1])`` before the search. The running sum reaches ``S*A``,
  so each probability carries an absolute rounding error of about ``1e-16 * S * A``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.tabular.mdp import DTYPE, ROW_SUM_ATOL, TabularMDP
from sobirl.validation import check_finite, check_int


@dataclass(frozen=True)
class Trajectories:
    """``n`` rollouts of length ``horizon``.

    Attributes:
        states: ``s_t``, long ``(n, horizon)``.
        actions: ``a_t``, long ``(n, horizon)``.
        alive: bool ``(n, horizon)``; True where step ``t`` happened (before the end of the trajectory).
    """

    states: torch.Tensor
    actions: torch.Tensor
    alive: torch.Tensor

    @property
    def n_transitions(self) -> int:
        """The number of steps that happened, ``alive.sum()``."""
        return int(self.alive.sum().item())

    def discounts(self, gamma: float) -> torch.Tensor:
        """``gamma^t * alive[i, t]``, float64 ``(n, horizon)``."""
        t = torch.arange(self.alive.shape[1], dtype=DTYPE, device=self.alive.device)
        return torch.pow(gamma, t) * self.alive

    def occupancy(self, gamma: float, shape: tuple[int, int], weights: torch.Tensor | None = None) -> torch.Tensor:
        """Weighted discounted visit counts ``N(s, a) = sum_i w_i sum_t gamma^t alive[i,t] 1{(s_t, a_t) = (s, a)}``.

        Args:
            gamma: discount.
            shape: ``(S, A)``.
            weights: per-trajectory weights ``(n,)``; ones when None.

        Returns:
            float64 ``(S, A)``.
        """
        d = self.discounts(gamma)
        if weights is not None:
            d = weights.unsqueeze(1) * d
        flat = self.states * shape[1] + self.actions
        N = torch.zeros(shape[0] * shape[1], dtype=DTYPE, device=d.device)
        return N.index_add_(0, flat.reshape(-1), d.reshape(-1)).view(shape)


def sample_actions(pi: torch.Tensor, states: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``a_i ~ pi(.|s_i)`` for a batch of states ``(n,)``; ``pi`` is a validated ``(S, A)`` policy."""
    return _sample_rows(pi.cumsum(dim=1), states, generator)


def sample_trajectories(
    mdp: TabularMDP,
    pi: torch.Tensor,
    n: int,
    horizon: int,
    *,
    start_states: torch.Tensor | None = None,
    start_actions: torch.Tensor | None = None,
    generator: torch.Generator,
) -> Trajectories:
    """Roll out ``n`` trajectories of policy ``pi`` in ``mdp`` at once, truncated at ``horizon``.

    Args:
        mdp: the MDP (``P`` dense or sparse, ``rho``, ``terminal``).
        pi: policy ``(S, A)``, rows summing to 1.
        n: number of trajectories (>= 1).
        horizon: steps per trajectory (>= 1).
        start_states: ``s_0`` per trajectory, long ``(n,)``; drawn from ``mdp.rho`` when None.
        start_actions: ``a_0`` per trajectory, long ``(n,)``; drawn from ``pi(.|s_0)`` when None.
        generator: the source of randomness (same seed, same samples).

    Returns:
        :class:`Trajectories` with ``(n, horizon)`` tensors.

    Raises:
        ValueError / TypeError: bad shapes, indices out of range or a policy that is not a distribution.
    """
    check_int("n", n, low=1)
    check_int("horizon", horizon, low=1)
    S, A = mdp.shape
    pi = _check_policy(mdp, pi)
    device = pi.device
    pi_cdf = pi.cumsum(dim=1)
    if start_states is None:
        rho_cdf = mdp.rho.cumsum(dim=0)
        u = torch.rand(n, generator=generator, dtype=DTYPE, device=device) * rho_cdf[-1]
        s = torch.searchsorted(rho_cdf, u, right=True).clamp(max=S - 1)
    else:
        s = _check_indices("start_states", start_states, n, S, device)
    a = (
        _sample_rows(pi_cdf, s, generator)
        if start_actions is None
        else _check_indices("start_actions", start_actions, n, A, device)
    )
    next_state = _NextState(mdp)
    states = torch.empty(n, horizon, dtype=torch.long, device=device)
    actions = torch.empty_like(states)
    alive = torch.zeros(n, horizon, dtype=torch.bool, device=device)
    live = torch.ones(n, dtype=torch.bool, device=device)
    for t in range(horizon):
        states[:, t], actions[:, t], alive[:, t] = s, a, live
        live = live & ~mdp.terminal[s]
        if t == horizon - 1 or not live.any():  # nothing left to sample
            states[:, t + 1 :], actions[:, t + 1 :] = s.unsqueeze(1), a.unsqueeze(1)
            break
        s = torch.where(live, next_state(s * A + a, generator), s)
        a = _sample_rows(pi_cdf, s, generator)
    return Trajectories(states=states, actions=actions, alive=alive)


class _NextState:
    """``s' ~ P(.|row)`` for a batch of flat rows ``s*A + a`` by inverse CDF (see the module docstring)."""

    def __init__(self, mdp: TabularMDP) -> None:
        self.sparse = mdp.is_sparse
        if self.sparse:
            crow = mdp.P.crow_indices()
            self.col = mdp.P.col_indices()
            c = torch.cat([mdp.P.values().new_zeros(1), mdp.P.values().cumsum(dim=0)])
            self.cum = c[1:]
            self.first, self.last = crow[:-1], crow[1:] - 1  # entry range of each row (empty for terminal rows)
            self.low, self.high = c[crow[:-1]], c[crow[1:]]
        else:
            self.cdf = mdp.P.reshape(-1, mdp.n_states).cumsum(dim=1)

    def __call__(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not self.sparse:
            return _sample_rows(self.cdf, rows, generator)
        low, high = self.low[rows], self.high[rows]
        u = low + torch.rand(rows.shape, generator=generator, dtype=DTYPE, device=rows.device) * (high - low)
        k = torch.searchsorted(self.cum, u, right=True)
        # Rounding may push u onto the row's end; an empty (terminal) row gives an index whose state is discarded.
        k = torch.minimum(torch.maximum(k, self.first[rows]), self.last[rows]).clamp(0, self.cum.numel() - 1)
        return self.col[k]


def _sample_rows(cdf: torch.Tensor, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Index ``j ~ p(.|row_i)`` per row of a batch, given the cumulative sums ``cdf`` of the distributions."""
    c = cdf[rows]
    u = torch.rand(rows.shape[0], 1, generator=generator, dtype=DTYPE, device=c.device) * c[:, -1:]
    return torch.searchsorted(c, u, right=True).squeeze(1).clamp(max=c.shape[1] - 1)


def _check_policy(mdp: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    if not isinstance(pi, torch.Tensor) or not pi.dtype.is_floating_point:
        raise TypeError(f"pi must be a floating torch.Tensor of shape (S, A) = {mdp.shape}")
    if tuple(pi.shape) != mdp.shape:
        raise ValueError(f"pi must have shape (S, A) = {mdp.shape}, got {tuple(pi.shape)}")
    pi = pi.detach().to(DTYPE)
    check_finite("pi", pi)
    worst = (pi.sum(dim=1) - 1.0).abs().max().item()
    if pi.min() < 0 or worst > ROW_SUM_ATOL:
        raise ValueError(
            f"pi must have rows that are distributions; min {pi.min().item():.3g}, row sum off by {worst:.3g}"
        )
    return pi


def _check_indices(name: str, idx: torch.Tensor, n: int, size: int, device: torch.device) -> torch.Tensor:
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long:
        raise TypeError(f"{name} must be a long (int64) torch.Tensor of shape (n,) = ({n},)")
    if idx.shape != (n,):
        raise ValueError(f"{name} must have shape (n,) = ({n},), got {tuple(idx.shape)}")
    if idx.min() < 0 or idx.max() >= size:
        raise ValueError(f"{name} must lie in [0, {size - 1}], got range [{idx.min().item()}, {idx.max().item()}]")
    return idx.to(device)
