"""Batched trajectory sampling in a tabular MDP: ``n`` rollouts advance together, one tensor step per time step.

    s_0 ~ rho (or given),  a_0 ~ pi(.|s_0) (or given),  s_{t+1} ~ P(.|s_t, a_t),  a_{t+1} ~ pi(.|s_{t+1})

A trajectory ends after the action taken in a terminal state (its reward is collected, nothing follows), or at
the horizon. ``alive[i, t]`` marks the steps that happened; later entries hold valid but meaningless indices.

Every draw is an inverse-CDF lookup with ``torch.searchsorted`` (``right=True``, so zero-probability entries are
never chosen):

- actions and start states: cumulative sums of ``pi`` (per state) and of ``rho``;
- next states: ONE cumulative sum ``c`` of the stored values of ``P`` read as a CSR matrix ``(S*A, S)`` (a sparse
  ``P`` is used as stored, never densified; a dense ``P`` stores every entry). Row ``r = s*A + a`` owns
  ``c[crow[r]:crow[r+1]]``, and ``u ~ U[0, 1)`` is mapped to ``low_r + u * (high_r - low_r)`` (the running sums
  just before and at the end of the row) before one ``searchsorted`` over all of ``c``: ``O(log nnz)`` per draw,
  no per-row gather. The running sum reaches ``S*A``, so each probability carries an absolute rounding error of
  about ``1e-16 * S * A``.

``coupled_blocks`` gives common random numbers to groups of trajectories (used for low-variance differences).
"""

from __future__ import annotations

import weakref
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

    def returns(self, gamma: float, reward: torch.Tensor) -> torch.Tensor:
        """Discounted returns ``sum_t gamma^t r(s_t, a_t)`` over the steps that happened, ``(n,)``.

        Args:
            gamma: discount.
            reward: reward table ``(S, A)``.
        """
        return (self.discounts(gamma) * reward[self.states, self.actions]).sum(dim=1)

    def returns_to_go(self, gamma: float, reward: torch.Tensor) -> torch.Tensor:
        """``G[i, t] = sum_{k >= t} gamma^(k - t) r(s_k, a_k)`` over the steps that happened, ``(n, horizon)``.

        Args:
            gamma: discount.
            reward: reward table ``(S, A)``.
        """
        horizon = self.alive.shape[1]
        t = torch.arange(horizon, device=self.alive.device)
        lag = t.unsqueeze(1) - t.unsqueeze(0)  # k - t
        # discount[k, t] = gamma^(k - t) for k >= t: one matrix product sums every suffix
        discount = torch.where(lag >= 0, torch.pow(gamma, lag.clamp(min=0).to(DTYPE)), 0.0)
        return (reward[self.states, self.actions] * self.alive) @ discount

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
    u = torch.rand(states.shape, generator=generator, dtype=DTYPE, device=pi.device)
    return _sample_rows(pi.cumsum(dim=1), states, u)


def sample_trajectories(
    mdp: TabularMDP,
    pi: torch.Tensor,
    n: int,
    horizon: int,
    *,
    start_states: torch.Tensor | None = None,
    start_actions: torch.Tensor | None = None,
    generator: torch.Generator,
    coupled_blocks: int = 1,
) -> Trajectories:
    """Roll out ``n`` trajectories of policy ``pi`` in ``mdp`` at once, truncated at ``horizon``.

    Args:
        mdp: the MDP (``P`` dense or sparse, ``rho``, ``terminal``).
        pi: policy ``(S, A)``, rows summing to 1.
        n: number of trajectories (>= 0; none gives empty tensors).
        horizon: steps per trajectory (>= 1).
        start_states: ``s_0`` per trajectory, long ``(n,)``; drawn from ``mdp.rho`` when None.
        start_actions: ``a_0`` per trajectory, long ``(n,)``; drawn from ``pi(.|s_0)`` when None.
        generator: the source of randomness (same seed, same samples).
        coupled_blocks: common random numbers: the trajectories form this many consecutive blocks of
            ``n // coupled_blocks`` (``n`` must divide), and the i-th members of all blocks use the same uniform
            draws at every step. Each trajectory keeps its distribution; members in the same state at the same
            time stay together from then on, so differences between blocks have a small variance.

    Returns:
        :class:`Trajectories` with ``(n, horizon)`` tensors.

    Raises:
        ValueError / TypeError: bad shapes, indices out of range or a policy that is not a distribution.
    """
    check_int("n", n, low=0)
    check_int("horizon", horizon, low=1)
    check_int("coupled_blocks", coupled_blocks, low=1)
    if n % coupled_blocks:
        raise ValueError(f"n = {n} must be a multiple of coupled_blocks = {coupled_blocks}")
    S, A = mdp.shape
    pi = _check_policy(mdp, pi)
    device = pi.device
    pi_cdf = pi.cumsum(dim=1)

    def uniform() -> torch.Tensor:
        return torch.rand(n // coupled_blocks, generator=generator, dtype=DTYPE, device=device).repeat(coupled_blocks)

    if start_states is None:
        rho_cdf = mdp.rho.cumsum(dim=0)
        s = torch.searchsorted(rho_cdf, _below(uniform() * rho_cdf[-1], rho_cdf[-1]), right=True)
    else:
        s = _check_indices("start_states", start_states, n, S, device)
    if start_actions is None:
        a = _sample_rows(pi_cdf, s, uniform())
    else:
        a = _check_indices("start_actions", start_actions, n, A, device)
    next_state = _NextState.of(mdp)
    # Time-major buffers: each step writes one contiguous row.
    states = torch.empty(horizon, n, dtype=torch.long, device=device)
    actions = torch.empty_like(states)
    alive = torch.zeros(horizon, n, dtype=torch.bool, device=device)
    live = torch.ones(n, dtype=torch.bool, device=device)
    for t in range(horizon):
        states[t], actions[t], alive[t] = s, a, live
        live = live & ~mdp.terminal[s]
        if t == horizon - 1 or not live.any():  # nothing left to sample
            states[t + 1 :], actions[t + 1 :] = s, a
            break
        s = torch.where(live, next_state(s * A + a, uniform()), s)
        a = _sample_rows(pi_cdf, s, uniform())
    states, actions, alive = states.T.contiguous(), actions.T.contiguous(), alive.T.contiguous()
    return Trajectories(states=states, actions=actions, alive=alive)


class _NextState:
    """``s' ~ P(.|row)`` for a batch of flat rows ``r = s*A + a``: one global inverse CDF (module docstring).

    A dense ``P`` is read as the CSR matrix that stores every entry of its ``(S*A, S)`` view, whose column
    indices are implicit (entry ``k`` is column ``k mod S``).
    """

    def __init__(self, mdp: TabularMDP) -> None:
        if mdp.is_sparse:
            crow, self.col, values = mdp.P.crow_indices(), mdp.P.col_indices(), mdp.P.values()
            self.dense_columns = 0
        else:
            values = mdp.P.reshape(-1)
            self.dense_columns = mdp.n_states
            crow = torch.arange(0, values.numel() + 1, mdp.n_states, device=values.device)
        c = torch.cat([values.new_zeros(1), values.cumsum(dim=0)])
        self.cum = c[1:]
        self.low, self.high = c[crow[:-1]], c[crow[1:]]  # the running sum just before and at the end of each row

    @classmethod
    def of(cls, mdp: TabularMDP) -> _NextState:
        """The table of ``mdp``, built once per MDP (an MDP's ``P`` never changes after construction)."""
        table = _TABLES.get(mdp)
        if table is None:
            table = _TABLES[mdp] = cls(mdp)
        return table

    def __call__(self, rows: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Successors of ``rows`` for uniforms ``u ~ U[0, 1)`` of the same shape."""
        low, high = self.low[rows], self.high[rows]
        k = torch.searchsorted(self.cum, _below(low + u * (high - low), high), right=True)
        k = k.clamp(0, self.cum.numel() - 1)  # the clamp only matters for empty (terminal) rows
        return k % self.dense_columns if self.dense_columns else self.col[k]


_TABLES: weakref.WeakKeyDictionary[TabularMDP, _NextState] = weakref.WeakKeyDictionary()


def _sample_rows(cdf: torch.Tensor, rows: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index ``j ~ p(.|row_i)`` per row of a batch by inverse CDF, given the cumulative sums ``cdf`` of the
    distributions and one uniform ``u_i ~ U[0, 1)`` per row."""
    c = cdf[rows]
    total = c[:, -1:]
    return torch.searchsorted(c, _below(u.unsqueeze(1) * total, total), right=True).squeeze(1)


def _below(u: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``u`` kept strictly below ``high``: a draw rounded up onto the end of its row would select past it."""
    return torch.minimum(u, torch.nextafter(high, torch.full_like(high, -torch.inf)))


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
