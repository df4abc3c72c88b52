"""Batched trajectory sampling in a tabular MDP: ``n`` rollouts advance together, about ten operations on
``n``-element tensors per time step and no Python loop over trajectories.

    s_0 ~ rho (or given),  a_0 ~ pi(.|s_0) (or given),  s_{t+1} ~ P(.|s_t, a_t),  a_{t+1} ~ pi(.|s_{t+1})

A trajectory ends after the action taken in a terminal state (its reward is collected, nothing follows), or at
the horizon. ``alive[i, t]`` marks the steps that happened; later entries hold valid but meaningless indices.

Every action and successor is drawn in O(1) from a Walker alias table (Walker 1977; Vose 1991). A row with ``m``
buckets and probabilities ``p_j`` keeps, in bucket ``j``, its own entry with probability ``q_j`` and otherwise
an alias ``alias_j``, such that ``(q_j + sum_{i: alias_i = j} (1 - q_i)) / m = p_j``. One uniform ``u`` draws
from it: with ``z = u m``, the bucket ``j = floor(z)`` is uniform and the fraction ``z - j`` is uniform on
``[0, 1)`` and independent of ``j``, so the draw is ``j`` if ``z < j + q_j`` (the stored threshold) and
``alias_j`` otherwise. An entry with ``p_j = 0`` has ``q_j = 0`` and is never an alias: it is never drawn.

- next states: tables of the rows ``P(.|s, a)``, built once per MDP and cached (``P`` never changes after
  construction): ``S`` buckets per row of a dense ``P``; for a sparse ``P`` (used as stored, never densified)
  one bucket per stored entry, the rows padded to the longest where they are about equally long
  (:class:`_Successors`). A terminal state's row, empty in ``P``, gets a self-loop here, so a trajectory that
  has ended stays where it ended and ``alive`` follows from the states alone:
  ``alive[:, t] = not terminal[s_{t-1}]``. Where rows have a fixed width, a bucket is one 64-bit word, the alias
  in its high bits and ``q_j`` in fixed point with ``F = 62 - bits(S - 1)`` fraction bits below it (``q_j = 1``
  takes the extra bit), compared with the fraction ``z - j`` in the same fixed point: a draw reads one random word
  of a table that can take gigabytes, not two (:func:`_empty_table` also backs such tables with huge pages). The
  drawn probabilities are exact to ``2^-F`` per bucket (``F = 48`` for ``S = 10^4``).
- actions: tables of the rows ``pi(.|s)``, ``A`` buckets each, built on every call (``O(S A)``).
- start states: inverse CDF of ``rho`` (``torch.searchsorted``, once per call).

The steps run in chunks of :data:`_CHUNK_STEPS`: the chunk's uniforms are drawn at once, two per trajectory and
step, one for the state and one for the action (:class:`_Uniforms`); ``z`` and the buckets are computed for the
whole chunk where the row width is fixed; each step writes one row of small time-major buffers (int64, as the
outputs: no conversion per step); and each chunk is copied into the ``(n, horizon)`` outputs.

The tables are built without a loop over entries, with the sweep construction of Hübschle-Schneider and Sanders
("Parallel weighted random sampling", ESA 2019) written with prefix sums (:func:`_alias_rows`): with weights
``x_j = m p_j`` (mean 1), entry ``j`` is heavy if ``x_j >= 1`` and light otherwise. Let ``D`` be the running sum
of the deficits ``1 - x_i`` of the light entries and ``E`` the running sum of the excesses ``x_j - 1`` of the
heavy ones, in entry order. A light entry keeps ``q_i = x_i`` and its alias is the first heavy ``j`` with
``E_j > D_{<i}`` (the deficit before it); a heavy ``j`` keeps ``q_j = 1 + E_j - D*_j``, where ``D*_j`` is the
deficit of the light entries assigned to it or to an earlier heavy, and its alias is the next heavy (the last
keeps ``q = 1``). The sums run within a row, so each ``q`` carries a rounding error of about ``1e-16 m``.

``coupled_blocks`` gives common random numbers to groups of trajectories (used for low-variance differences).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from sobirl.tabular.mdp import DTYPE, ROW_SUM_ATOL, TabularMDP
from sobirl.validation import check_finite, check_int

_CHUNK_STEPS = 8
"""Time steps handled together: their uniforms and buckets computed at once, their results copied to the outputs at
once."""

_BUILD_CHUNK = 1 << 20
"""Entries per pass of the alias-table build (whole rows; a longer row is one pass on its own)."""

_HUGE_PAGE = 1 << 21
"""Bytes of a transparent huge page on x86-64 and most arm64 kernels."""


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
    A = pi.shape[1]
    z = torch.rand(states.shape, generator=generator, dtype=DTYPE, device=pi.device) * A
    return _Actions(pi.detach().to(DTYPE)).draw(states, z.long(), z) - states * A


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
    if start_states is not None:
        start_states = _check_indices("start_states", start_states, n, S, device)
    if start_actions is not None:
        start_actions = _check_indices("start_actions", start_actions, n, A, device)
    if n == 0:
        empty = torch.empty(0, horizon, dtype=torch.long, device=device)
        return Trajectories(states=empty, actions=empty.clone(), alive=empty.bool())
    actions = _Actions(pi)
    successors = _Successors.of(mdp)

    out_states = torch.empty(n, horizon, dtype=torch.long, device=device)
    out_actions = torch.empty_like(out_states)
    alive = torch.ones(n, horizon, dtype=torch.bool, device=device)
    has_terminal = bool(mdp.terminal.any())
    # Time-major scratch for one chunk of steps, written row by row: s[i] = s_t and flat[i] = s_t * A + a_t (the
    # row of P to follow); each chunk is then copied into the (n, horizon) outputs.
    chunk = min(horizon, _CHUNK_STEPS)
    s = torch.empty(chunk, n, dtype=torch.long, device=device)
    flat = torch.empty(chunk, n, dtype=torch.long, device=device)
    s_rows, flat_rows = s.unbind(0), flat.unbind(0)
    uniforms = _Uniforms(generator, chunk, n // coupled_blocks)
    for t0 in range(0, horizon, chunk):
        k = min(chunk, horizon - t0)
        # The chunk's uniforms, shared by the blocks: u_state[i] draws s_{t0+i}, u_action[i] its action.
        u_state, u_action = (u.to(device) for u in uniforms.next(k))
        if coupled_blocks > 1:
            u_state, u_action = u_state.repeat(1, coupled_blocks), u_action.repeat(1, coupled_blocks)
        action_z = u_action.mul_(A)
        action_z_rows, action_bucket_rows = action_z.unbind(0), action_z.long().unbind(0)
        state_key, state_bucket = successors.prepare(u_state)
        state_key_rows = state_key.unbind(0)
        state_bucket_rows = [None] * k if state_bucket is None else state_bucket.unbind(0)
        done = k
        for i in range(k):
            if t0 + i == 0:
                if start_states is None:
                    rho_cdf = mdp.rho.cumsum(dim=0)
                    # u * total < total for every u <= 1 - 2^-53: the draw never runs past the last state
                    torch.searchsorted(rho_cdf, u_state[0] * rho_cdf[-1], right=True, out=s_rows[0])
                else:
                    s_rows[0].copy_(start_states)
                if start_actions is not None:
                    torch.add(start_actions, s_rows[0], alpha=A, out=flat_rows[0])
                    continue
            elif has_terminal and bool(mdp.terminal[s_rows[i - 1]].all()):  # every trajectory has ended
                done = i
                break
            else:
                successors.draw(flat_rows[i - 1], state_bucket_rows[i], state_key_rows[i], out=s_rows[i])
            actions.draw(s_rows[i], action_bucket_rows[i], action_z_rows[i], out=flat_rows[i])
        end = t0 + done
        out_states[:, t0:end].copy_(s[:done].T)
        torch.sub(flat[:done].T, s[:done].T, alpha=A, out=out_actions[:, t0:end])
        if done < k:  # the remaining columns repeat the last step, in the terminal state where it ended
            out_states[:, end:], out_actions[:, end:] = out_states[:, end - 1 : end], out_actions[:, end - 1 : end]
            break
    if has_terminal:
        alive[:, 1:] = ~mdp.terminal[out_states[:, :-1]]
    return Trajectories(states=out_states, actions=out_actions, alive=alive)


class _Uniforms:
    """Uniforms on ``[0, 1)`` for the states and the actions of a chunk of steps, reproducible from a torch
    generator: numpy's PCG64 generator, seeded by one draw from ``generator``, refills two buffers.

    Why not ``torch.rand``: torch's CPU generator (MT19937) takes about 5 ns per float64 and the sampler needs
    two per transition, a third of a call's time at ``n = 10^4``; PCG64 takes about 2 ns. Both give multiples of
    ``2^-53``, at most ``1 - 2^-53``. On another device the uniforms are copied there.
    """

    def __init__(self, generator: torch.Generator, steps: int, n: int) -> None:
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.buffer = np.empty((2, steps, n))

    def next(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh ``(steps, n)`` uniforms for the states and for the actions (CPU float64 views of the buffers,
        overwritten by the next call)."""
        state, action = self.buffer[0, :steps], self.buffer[1, :steps]
        self.rng.random(out=state)
        self.rng.random(out=action)
        return torch.from_numpy(state), torch.from_numpy(action)


class _Actions:
    """Alias tables of the rows ``pi(.|s)``, ``A`` buckets per state, whose draws are flat indices ``s*A + a``."""

    def __init__(self, pi: torch.Tensor) -> None:
        S, A = pi.shape
        self.width = A
        self.threshold, alias = _alias_fixed(pi)
        self.alias = alias + torch.arange(0, S * A, A, device=pi.device).repeat_interleave(A)

    def draw(
        self, states: torch.Tensor, bucket: torch.Tensor, z: torch.Tensor, *, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``s_i * A + a_i`` with ``a_i ~ pi(.|s_i)``, given ``z_i = u_i * A`` for uniforms ``u_i`` and
        ``bucket_i = floor(z_i)``."""
        b = torch.add(bucket, states, alpha=self.width)
        return torch.where(z < self.threshold.index_select(0, b), b, self.alias.index_select(0, b), out=out)


class _Successors:
    """Alias tables of the rows ``P(.|s, a)`` of an MDP (module docstring), indexed by ``r = s*A + a``.

    One of three layouts:

    - dense ``P``: ``S`` buckets per row, bucket ``r*S + j`` keeps state ``j``;
    - sparse ``P`` whose rows are about equally long (``S*A * longest <= 2 nnz``): every row padded with
      zero-probability entries to the longest, ``W``; bucket ``r*W + j`` keeps ``col[r*W + j]``;
    - other sparse ``P``: as stored, one bucket per entry of the CSR matrix; a row's bucket is
      ``crow[r] + floor(u * nnz_r)``, so each draw also reads the row's offset and length. Memory stays
      ``O(nnz)`` whatever the row lengths.

    In the two fixed-width layouts a bucket is one int64 word, ``alias << (F + 1) | round(q * 2^F)``
    (:func:`_alias_words`; a dense MDP with ``S = 10^4`` has ``4e8`` buckets, 3.2 GB); the CSR layout keeps the
    thresholds (float64) and the aliases (int64) apart. The kept states of a padded sparse ``P`` are int32.
    """

    def __init__(self, mdp: TabularMDP) -> None:
        S, A = mdp.shape
        device = mdp.terminal.device
        state_of_row = torch.arange(S, device=device).repeat_interleave(A)
        ended = mdp.terminal.repeat_interleave(A)  # rows of terminal states: empty, given a self-loop here
        self.col: torch.Tensor | None = None
        self.shift = 62 - max(1, (S - 1).bit_length())  # F: q in [0, 1] takes F + 1 bits below the alias
        if not mdp.is_sparse:
            weights = mdp.P.reshape(S * A, S)
            if ended.any():
                weights = weights.clone()
                weights[ended, state_of_row[ended]] = 1.0
            self.width: int | None = S
            self.words = _alias_words(weights, self.shift)
            return
        crow, col, values = mdp.P.crow_indices(), mdp.P.col_indices(), mdp.P.values()
        if ended.any():
            crow = torch.cat([crow.new_zeros(1), (crow.diff() + ended).cumsum(dim=0)])
            loops = crow[:-1][ended]  # the one entry of each terminal row
            stored = torch.ones(int(crow[-1]), dtype=torch.bool, device=device)
            stored[loops] = False
            col = torch.empty(stored.shape, dtype=col.dtype, device=device).masked_scatter_(stored, col)
            col[loops] = state_of_row[ended]
            values = torch.ones(stored.shape, dtype=DTYPE, device=device).masked_scatter_(stored, values)
        lengths = crow.diff()
        width = int(lengths.max())
        if S * A * width <= 2 * values.numel():
            used = torch.arange(width, device=device) < lengths.unsqueeze(1)
            padded = torch.zeros(used.shape, dtype=DTYPE, device=device).masked_scatter_(used, values)
            col = torch.zeros(used.shape, dtype=torch.int32, device=device).masked_scatter_(used, col.int())
            self.width = width
            self.words = _alias_words(padded, self.shift, states=col)
            self.col = col.reshape(-1)
            return
        self.width = None
        self.threshold, alias = _alias_csr(values, crow)
        self.alias = col[alias.long() + torch.repeat_interleave(crow[:-1], lengths)]
        self.col = col
        self.offset, self.length = crow[:-1], lengths.to(DTYPE)

    @classmethod
    def of(cls, mdp: TabularMDP) -> _Successors:
        """The tables of ``mdp``, built once per MDP (an MDP's ``P`` never changes after construction)."""
        table = _TABLES.get(mdp)
        if table is None:
            table = _TABLES[mdp] = cls(mdp)
        return table

    def prepare(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The inputs of :meth:`draw` for uniforms ``u``. Where the row width ``W`` is fixed: with ``z = u * W``, the
        fraction ``z - floor(z)`` in the words' fixed point (int64, ``F`` bits) and the buckets ``floor(z)`` (int64);
        for CSR rows (their width varies), ``u`` itself and None."""
        if self.width is None:
            return u, None
        z = u * self.width
        bucket = z.long()
        return z.sub_(bucket).mul_(2.0**self.shift).long(), bucket

    def draw(
        self, rows: torch.Tensor, bucket: torch.Tensor | None, key: torch.Tensor, *, out: torch.Tensor
    ) -> torch.Tensor:
        """Successors ``s'_i ~ P(.|rows_i)`` of flat rows ``rows_i = s_i*A + a_i``, written to ``out``; ``key`` and
        ``bucket`` come from :meth:`prepare`."""
        if bucket is not None:
            b = torch.add(bucket, rows, alpha=self.width)
            word = self.words.index_select(0, b)
            own = bucket if self.col is None else self.col.index_select(0, b)
            alias = torch.bitwise_right_shift(word, self.shift + 1)
            keep = key < word.bitwise_and_((2 << self.shift) - 1)
            return torch.where(keep, own, alias, out=out)
        z = key * self.length.index_select(0, rows)
        b = self.offset.index_select(0, rows) + z.long()
        keep = z < self.threshold.index_select(0, b)
        return torch.where(keep, self.col.index_select(0, b), self.alias.index_select(0, b), out=out)


_TABLES: weakref.WeakKeyDictionary[TabularMDP, _Successors] = weakref.WeakKeyDictionary()


def _alias_chunks(p: torch.Tensor) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """:func:`_alias_rows` of ``(rows, width)`` weights, about :data:`_BUILD_CHUNK` entries at a time: yields the
    rows' slice and their tables."""
    rows, width = p.shape
    step = max(1, _BUILD_CHUNK // width)
    for start in range(0, rows, step):
        part = slice(start, start + step)
        yield (part, *_alias_rows(p[part]))


def _alias_fixed(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The alias tables of the rows of ``(rows, width)`` weights.

    Returns:
        the thresholds (float64) and aliases (int32, positions in the row), both flat ``(rows * width,)``.
    """
    threshold = torch.empty(p.shape, dtype=DTYPE, device=p.device)
    alias = torch.empty(p.shape, dtype=torch.int32, device=p.device)
    for part, t, a in _alias_chunks(p):
        threshold[part], alias[part] = t, a
    return threshold.view(-1), alias.view(-1)


def _alias_words(p: torch.Tensor, shift: int, states: torch.Tensor | None = None) -> torch.Tensor:
    """The alias tables of the rows of ``(rows, width)`` weights as one int64 word per bucket:
    ``alias << (shift + 1) | round(q * 2^shift)``, ``q = threshold - position`` in ``[0, 1]``.

    Args:
        p: the weights.
        shift: ``F``, the fraction bits of ``q``; every alias must be below ``2^(62 - F)``.
        states: ``(rows, width)`` int32, the state each position of a row stands for (the aliases are then states);
            positions themselves when None.

    Returns:
        flat ``(rows * width,)`` int64, in a table from :func:`_empty_table`.
    """
    words = _empty_table(p.numel(), torch.int64, p.device).view(p.shape)
    position = torch.arange(p.shape[1], dtype=DTYPE, device=p.device)
    for part, threshold, alias in _alias_chunks(p):
        alias = alias.long() if states is None else states[part].gather(1, alias.long()).long()
        fraction = threshold.sub_(position).mul_(2.0**shift).round_().long()
        words[part] = alias.bitwise_left_shift_(shift + 1).bitwise_or_(fraction)
    return words.view(-1)


def _empty_table(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised 1-D tensor for a large lookup table, in transparent huge pages where the platform offers
    them (a CPU tensor on Linux, the kernel's THP setting ``always`` or ``madvise``); else :func:`torch.empty`.

    Why: a random read of a table of gigabytes in 4 kB pages also misses the TLB, and the page walk misses the
    cache too; with 2 MB pages the walk stays in cache. ``index_select`` of 10^4 random entries of a 3.2 GB table
    took 132-189 us instead of 214 us.
    """
    nbytes = numel * dtype.itemsize
    if device.type != "cpu" or nbytes < _HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(numel, dtype=dtype, device=device)
    # private: a shared anonymous map is shmem, whose huge pages have their own setting (often ``never``)
    region = mmap.mmap(-1, nbytes + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with contextlib.suppress(OSError):  # a kernel without transparent huge pages: ordinary pages
        region.madvise(mmap.MADV_HUGEPAGE)
    offset = -torch.frombuffer(region, dtype=torch.uint8, count=1).data_ptr() % _HUGE_PAGE
    return torch.frombuffer(region, dtype=dtype, count=numel, offset=offset)  # keeps the region alive


def _alias_csr(weights: torch.Tensor, crow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_alias_rows` for the rows ``weights[crow[r]:crow[r + 1]]`` of a CSR array, one bucket per entry.

    Consecutive rows are padded to the longest among them, in groups of about :data:`_BUILD_CHUNK` padded
    entries (a longer row is a group of its own).

    Returns:
        the thresholds (float64) and aliases (int32, positions in the row), both ``(nnz,)``.
    """
    lengths = crow.diff()
    threshold = torch.empty_like(weights)
    alias = torch.empty(weights.shape, dtype=torch.int32, device=weights.device)
    bounds, count, longest = [0], 0, 0
    for r, m in enumerate(lengths.tolist()):
        if count and (count + 1) * max(longest, m) > _BUILD_CHUNK:
            bounds.append(r)
            count, longest = 0, 0
        count, longest = count + 1, max(longest, m)
    bounds.append(lengths.numel())
    for start, stop in itertools.pairwise(bounds):
        lo, hi = int(crow[start]), int(crow[stop])
        m = lengths[start:stop]
        used = torch.arange(int(m.max()), device=weights.device) < m.unsqueeze(1)
        padded = torch.zeros(used.shape, dtype=DTYPE, device=weights.device).masked_scatter_(used, weights[lo:hi])
        t, a = _alias_rows(padded, m)
        threshold[lo:hi], alias[lo:hi] = t[used], a[used]
    return threshold, alias


def _alias_rows(p: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Walker alias tables of the rows of ``p`` (module docstring): the sweep construction in prefix-sum form.

    Args:
        p: ``(rows, width)`` non-negative weights, each row with a positive sum.
        lengths: ``(rows,)`` entries in use per row (the rest are zero padding, given meaningless results);
            all ``width`` when None.

    Returns:
        ``threshold[r, j] = j + q[r, j]`` (float64; bucket ``j`` keeps its entry when ``z = u * m < threshold``)
        and ``alias[r, j]`` (int32, a position in the row), both ``(rows, width)``.
    """
    rows, width = p.shape
    position = torch.arange(width, device=p.device)
    m = width if lengths is None else lengths.unsqueeze(1).to(DTYPE)
    x = p * (m / p.sum(dim=1, keepdim=True))  # x_j = m p_j: mean 1 over the row
    # Heavy: x_j >= 1, or the row maximum where rounding left every entry below 1.
    heavy = x >= x.amax(dim=1, keepdim=True).clamp_(max=1.0)
    light = ~heavy if lengths is None else ~heavy & (position < lengths.unsqueeze(1))
    deficit = (1.0 - x) * light
    D = deficit.cumsum(dim=1)
    E = (x - 1.0).clamp_(min=0.0).cumsum(dim=1)  # only heavies have an excess
    # The heavies in order: rank[j] = heavies up to j, at[k] = position of the k-th heavy (counting from 0).
    rank = heavy.cumsum(dim=1)
    at = torch.full((rows, width + 1), width, device=p.device)
    at.scatter_(1, torch.where(heavy, rank - 1, width), position.expand(rows, width))
    following = at.gather(1, rank)  # for a heavy, the next one (width if it is the last)
    # A light entry keeps q = x_i; its alias is the first heavy whose running excess exceeds the deficit before
    # it (E only grows at heavies, so the first such position is one). E is infinite from the last heavy on,
    # so that rounding never leaves a light past it.
    E.masked_fill_(position >= at.gather(1, rank[:, -1:] - 1), torch.inf)
    assigned = torch.searchsorted(E, D - deficit, right=True)
    # Heavy j: D*_j, the deficit of the lights assigned to it or to an earlier heavy (a prefix of the lights), is
    # the running maximum of the deficit through each light, put at its heavy. That leaves j with
    # q_j = 1 + E_j - D*_j, and the next heavy fills the rest of its bucket; the last heavy keeps q = 1.
    D_star = torch.zeros_like(x).scatter_reduce_(1, assigned, D * light, "amax").cummax(dim=1).values
    is_last = following == width
    q = torch.where(heavy, (1.0 + E - D_star).clamp_(0.0, 1.0).masked_fill_(is_last, 1.0), x)
    alias = torch.where(heavy, torch.where(is_last, position, following), assigned)
    return position + q, alias.to(torch.int32)


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
    if idx.numel() and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"{name} must lie in [0, {size - 1}], got range [{idx.min().item()}, {idx.max().item()}]")
    return idx.to(device)
