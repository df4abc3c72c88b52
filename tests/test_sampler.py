"""The batched trajectory sampler (sobirl.tabular.sampler) against exact distributions of the MDP."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest
import torch

from conftest import F64, random_transitions, to_sparse
from sobirl.problems.gridworld import gridworld_mdp
from sobirl.tabular import TabularMDP, sample_actions, sample_trajectories
from sobirl.tabular.sampler import _HUGE_PAGE, _alias_csr, _alias_rows, _alias_words, _empty_table, _Successors


def _mdp(layout: str, *, S: int = 6, A: int = 3, seed: int = 0, **kwargs) -> tuple[TabularMDP, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    P = random_transitions(S, A, gen)
    return TabularMDP(P if layout == "dense" else to_sparse(P, layout), **kwargs), P


def _policy(S: int, A: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(S, A, generator=gen, dtype=F64), dim=1)


def _z_scores(counts: torch.Tensor, p: torch.Tensor, n: int) -> torch.Tensor:
    """|empirical - p| in binomial standard errors (the floor keeps p = 0 entries finite)."""
    se = (p * (1 - p) / n).sqrt().clamp(min=1e-12)
    return (counts / n - p).abs() / se


def _skewed_mdp(terminal: torch.Tensor | None = None) -> tuple[TabularMDP, torch.Tensor]:
    """A CSR MDP with one row spread over every state and one successor elsewhere: its rows are too unequal to
    pad, so the sampler keeps them as stored."""
    S, A = 12, 2
    P = torch.zeros(S, A, S, dtype=F64)
    P[torch.arange(S), :, (torch.arange(S) + 1) % S] = 1.0
    P[3, 1] = torch.softmax(torch.randn(S, generator=torch.Generator().manual_seed(5), dtype=F64), dim=0)
    P[3, 1, 7] = 0.0
    P[3, 1] /= P[3, 1].sum()
    return TabularMDP(to_sparse(P, "csr"), terminal=terminal), P


def _implied(threshold: torch.Tensor, alias: torch.Tensor) -> torch.Tensor:
    """The distribution an alias table of one row draws: bucket j keeps j with q_j = threshold_j - j, else gives
    alias_j, each bucket with probability 1/m."""
    m = threshold.numel()
    q = threshold - torch.arange(m, dtype=F64)
    return (q / m).index_add(0, alias.long(), (1 - q) / m)


def _rows(seed: int) -> list[torch.Tensor]:
    """Rows that stress the construction: zeros, ties, one-hot, uniform, weights over 30 orders of magnitude."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for width in (1, 2, 3, 4, 7, 50):
        w = torch.rand(width, generator=gen, dtype=F64)
        sparse = torch.where(torch.rand(width, generator=gen) < 0.5, 0.0, w)
        sparse[0] += 0.1
        one_hot = torch.zeros(width, dtype=F64)
        one_hot[width // 2] = 1.0
        spread = 10.0 ** (-30 * torch.rand(width, generator=gen, dtype=F64))
        rows += [w, sparse, one_hot, torch.full((width,), 1 / 3, dtype=F64), spread]
    return rows


def test_alias_tables_are_exact():
    """Each table draws exactly its row's distribution (up to rounding), and zero-probability entries are never
    drawn: they keep nothing (q = 0) and are no bucket's alias."""
    for p in _rows(0):
        threshold, alias = _alias_rows(p.unsqueeze(0))
        q = threshold[0] - torch.arange(p.numel(), dtype=F64)
        target = p / p.sum()
        assert (q >= 0).all() and (q <= 1).all()
        torch.testing.assert_close(_implied(threshold[0], alias[0]), target, rtol=0, atol=1e-15)
        assert (q[target == 0] == 0).all()
        assert (target[alias[0].long()[q < 1]] > 0).all()


def test_alias_tables_of_csr_rows():
    """Rows of different lengths, built together: each row's table has one bucket per entry and is exact."""
    rows = _rows(1)
    crow = torch.tensor([0] + [len(p) for p in rows]).cumsum(dim=0)
    threshold, alias = _alias_csr(torch.cat(rows), crow)
    for r, p in enumerate(rows):
        lo, hi = int(crow[r]), int(crow[r + 1])
        torch.testing.assert_close(_implied(threshold[lo:hi], alias[lo:hi]), p / p.sum(), rtol=0, atol=1e-15)


def test_alias_words_hold_the_exact_tables():
    """One word per bucket, alias above q in fixed point: decoded, each row draws its distribution to 2^-F, with
    q = 1 (the extra bit) and q = 0 kept apart; with ``states``, the aliases are the states of the positions."""
    rows = [p for p in _rows(2) if p.numel() == 7]
    p = torch.stack(rows)
    shift = 62 - 3
    words = _alias_words(p, shift).view(p.shape)
    q = (words & ((2 << shift) - 1)).to(F64) / 2.0**shift
    alias = words >> (shift + 1)
    position = torch.arange(7, dtype=F64)
    assert (q == 1).any() and (q == 0).any()
    for r, row in enumerate(rows):
        torch.testing.assert_close(
            _implied(position + q[r], alias[r]), row / row.sum(), rtol=0, atol=1e-15 + 2.0**-shift
        )
    states = torch.randperm(7, generator=torch.Generator().manual_seed(0)).int().expand(p.shape).contiguous()
    mapped = _alias_words(p, shift, states=states).view(p.shape)
    assert torch.equal(mapped >> (shift + 1), states.gather(1, alias).long())
    assert torch.equal(mapped & ((2 << shift) - 1), words & ((2 << shift) - 1))


def _kernel_grants_huge_pages() -> bool:
    """Whether Linux gives transparent huge pages to a region that asks for them (``madvise``)."""
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return setting.exists() and ("[always]" in setting.read_text() or "[madvise]" in setting.read_text())


def _huge_kb_at(address: int) -> int:
    """``AnonHugePages`` (kB) of this process's mapping that holds ``address`` (``/proc/self/smaps``)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    raise AssertionError(f"no mapping holds {address:#x}")


def test_empty_table_is_a_huge_page_aligned_tensor():
    """A large CPU table starts on a huge-page boundary (where the platform offers them) and is ordinary memory."""
    table = _empty_table(3 * _HUGE_PAGE // 8 + 5, torch.int64, torch.device("cpu"))
    assert table.shape == (3 * _HUGE_PAGE // 8 + 5,) and table.dtype == torch.int64
    if hasattr(mmap, "MADV_HUGEPAGE"):
        assert table.data_ptr() % _HUGE_PAGE == 0
    table.copy_(torch.arange(table.numel()))
    assert int(table[-1]) == table.numel() - 1 and int(table.sum()) == table.numel() * (table.numel() - 1) // 2
    if _kernel_grants_huge_pages():
        assert _huge_kb_at(table.data_ptr()) > 0
    small = _empty_table(10, torch.int64, torch.device("cpu"))
    assert small.shape == (10,)


def test_successor_tables_layouts():
    """Dense P: S buckets per row; a grid world: rows padded to the longest; unequal sparse rows: CSR as stored."""
    dense, _ = _mdp("dense")
    assert _Successors.of(dense).width == 6 and _Successors.of(dense).col is None
    grid = _Successors.of(gridworld_mdp(5))
    assert grid.width == 4 and grid.col is not None
    skewed, _ = _skewed_mdp()
    assert _Successors.of(skewed).width is None
    assert _Successors.of(dense) is _Successors.of(dense)  # built once per MDP


@pytest.mark.parametrize("terminal", [False, True])
def test_next_state_frequencies_of_unequal_sparse_rows(terminal):
    """The CSR layout: one bucket per stored entry, the row found by its offset and length."""
    ended = torch.zeros(12, dtype=torch.bool)
    ended[9] = terminal
    mdp, P = _skewed_mdp(ended)
    n = 200_000
    for s, a in [(3, 1), (3, 0), (10, 1)]:
        traj = sample_trajectories(
            mdp,
            _policy(12, 2),
            n,
            2,
            start_states=torch.full((n,), s),
            start_actions=torch.full((n,), a),
            generator=torch.Generator().manual_seed(s + a),
        )
        counts = torch.bincount(traj.states[:, 1], minlength=12).to(F64)
        assert _z_scores(counts, P[s, a], n).max() < 5.0
        assert counts[P[s, a] == 0].sum() == 0
    # a terminal state's row is empty: trajectories that reach it end there
    traj = sample_trajectories(
        mdp, _policy(12, 2), 100, 6, start_states=torch.full((100,), 8), generator=torch.Generator().manual_seed(0)
    )
    assert traj.states[:, 1].eq(9).all()
    assert traj.alive[:, 2].tolist() == [not terminal] * 100
    assert traj.states[:, 2].eq(9 if terminal else 10).all()


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_action_and_next_state_are_jointly_right(layout):
    """(a_0, s_1) from a fixed s_0 has the law pi(a|s_0) P(s'|s_0, a): the two draws of a step are independent."""
    mdp, P = _mdp(layout, S=5, A=3)
    pi = _policy(5, 3)
    pi[2, 1] = 0.0
    pi[2] /= pi[2].sum()
    n = 300_000
    traj = sample_trajectories(
        mdp, pi, n, 2, start_states=torch.full((n,), 2), generator=torch.Generator().manual_seed(9)
    )
    counts = torch.bincount(traj.actions[:, 0] * 5 + traj.states[:, 1], minlength=15).to(F64)
    joint = (pi[2].unsqueeze(1) * P[2]).reshape(-1)
    assert _z_scores(counts, joint, n).max() < 5.0
    assert counts[joint == 0].sum() == 0


@pytest.mark.parametrize("layout", ["dense", "coo", "csr"])
def test_next_state_frequencies_match_P(layout):
    mdp, P = _mdp(layout, S=8, A=3)
    n = 200_000
    for s, a in [(0, 0), (5, 2)]:
        traj = sample_trajectories(
            mdp,
            _policy(8, 3),
            n,
            2,
            start_states=torch.full((n,), s),
            start_actions=torch.full((n,), a),
            generator=torch.Generator().manual_seed(s),
        )
        counts = torch.bincount(traj.states[:, 1], minlength=8).to(F64)
        assert _z_scores(counts, P[s, a], n).max() < 5.0
        assert counts[P[s, a] == 0].sum() == 0  # zero-probability successors are never drawn


def test_action_frequencies_match_pi():
    pi = _policy(4, 5)
    pi[2, 1] = 0.0
    pi[2] /= pi[2].sum()
    n = 200_000
    a = sample_actions(pi, torch.full((n,), 2), torch.Generator().manual_seed(0))
    counts = torch.bincount(a, minlength=5).to(F64)
    assert _z_scores(counts, pi[2], n).max() < 5.0
    assert counts[1] == 0


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_discounted_visitation_matches_occupancy(layout):
    """(1/n) sum_i sum_t gamma^t 1{(s_t, a_t) = (s, a)}  vs  d(s, a) = [(I - gamma P_pi)^{-T} rho](s) pi(a|s)."""
    S, A, gamma, n, horizon = 6, 3, 0.8, 20_000, 80  # gamma^80 = 2e-8
    rho = torch.softmax(torch.randn(S, generator=torch.Generator().manual_seed(3), dtype=F64), dim=0)
    mdp, P = _mdp(layout, S=S, A=A, gamma=gamma, rho=rho)
    pi = _policy(S, A)
    P_pi = torch.einsum("sa,sat->st", pi, P)
    d = torch.linalg.solve((torch.eye(S, dtype=F64) - gamma * P_pi).T, rho).unsqueeze(1) * pi
    traj = sample_trajectories(mdp, pi, n, horizon, generator=torch.Generator().manual_seed(4))
    # per-trajectory discounted visit counts, for the standard error of their mean
    flat = traj.states * A + traj.actions
    per_traj = torch.zeros(n, S * A, dtype=F64).scatter_add_(1, flat, traj.discounts(gamma)).view(n, S, A)
    empirical = traj.occupancy(gamma, (S, A)) / n
    torch.testing.assert_close(per_traj.mean(dim=0), empirical, rtol=1e-12, atol=1e-12)
    z = (empirical - d).abs() / (per_traj.std(dim=0) / n**0.5)
    assert z.max() < 5.0
    assert (empirical - d).abs().max() < 0.02 * d.max()
    assert empirical.sum().item() == pytest.approx((1 - gamma**horizon) / (1 - gamma), rel=1e-12)


def test_occupancy_weights():
    mdp, _ = _mdp("dense")
    traj = sample_trajectories(mdp, _policy(6, 3), 50, 7, generator=torch.Generator().manual_seed(0))
    w = torch.linspace(-1, 2, 50, dtype=F64)
    expected = torch.zeros(6, 3, dtype=F64)
    d = traj.discounts(0.7)
    for i in range(50):  # reference: the definition, one visit at a time
        for t in range(7):
            expected[traj.states[i, t], traj.actions[i, t]] += w[i] * d[i, t]
    torch.testing.assert_close(traj.occupancy(0.7, (6, 3), w), expected, rtol=1e-12, atol=1e-12)


def test_returns():
    mdp, _ = _mdp("dense", terminal=torch.tensor([False, False, True, False, False, False]))
    traj = sample_trajectories(mdp, _policy(6, 3), 40, 9, generator=torch.Generator().manual_seed(0))
    r = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    expected = torch.zeros(40, 9, dtype=F64)
    for i in range(40):  # reference: the definition, backwards in time
        for t in reversed(range(9)):
            later = 0.7 * expected[i, t + 1] if t < 8 else 0.0
            expected[i, t] = (r[traj.states[i, t], traj.actions[i, t]] + later) * traj.alive[i, t]
    torch.testing.assert_close(traj.returns_to_go(0.7, r), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(traj.returns(0.7, r), expected[:, 0], rtol=1e-12, atol=1e-12)


def test_empty_batch():
    mdp, _ = _mdp("csr")
    traj = sample_trajectories(mdp, _policy(6, 3), 0, 4, generator=torch.Generator())
    assert traj.states.shape == (0, 4) and traj.n_transitions == 0
    assert traj.occupancy(0.9, (6, 3)).abs().sum() == 0


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_coupled_blocks_share_randomness(layout):
    """Common random numbers: each block keeps the right distribution, and coupled members that meet stay together."""
    mdp, P = _mdp(layout, S=8, A=3)
    n = 100_000
    s0 = torch.full((2 * n,), 4)
    a0 = torch.cat([torch.zeros(n, dtype=torch.long), torch.full((n,), 2)])
    traj = sample_trajectories(
        mdp,
        _policy(8, 3),
        2 * n,
        12,
        start_states=s0,
        start_actions=a0,
        generator=torch.Generator().manual_seed(0),
        coupled_blocks=2,
    )
    for block, a in [(slice(0, n), 0), (slice(n, 2 * n), 2)]:
        counts = torch.bincount(traj.states[block, 1], minlength=8).to(F64)
        assert _z_scores(counts, P[4, a], n).max() < 5.0
    first, second = traj.states[:n], traj.states[n:]
    same_pair = (first == second) & (traj.actions[:n] == traj.actions[n:])
    met = same_pair.cumsum(dim=1) > 0
    assert torch.equal(met, same_pair)  # once at the same (s, a), together for good
    assert not met[:, 0].any()
    assert 0.5 < met[:, -1].float().mean() < 1.0  # most pairs met within 12 steps, not all at once
    same = sample_trajectories(
        mdp, _policy(8, 3), 200, 12, start_states=torch.full((200,), 4), generator=torch.Generator(), coupled_blocks=4
    )
    assert (same.states.view(4, 50, 12) == same.states[:50]).all()
    assert (same.actions.view(4, 50, 12) == same.actions[:50]).all()


def test_start_states_and_actions_are_respected():
    mdp, _ = _mdp("csr")
    gen = torch.Generator().manual_seed(0)
    s0 = torch.randint(0, 6, (500,), generator=gen)
    a0 = torch.randint(0, 3, (500,), generator=gen)
    both = sample_trajectories(mdp, _policy(6, 3), 500, 5, start_states=s0, start_actions=a0, generator=gen)
    assert torch.equal(both.states[:, 0], s0) and torch.equal(both.actions[:, 0], a0)
    # only the state given: a_0 ~ pi(.|s_0), here a deterministic policy
    pi = torch.zeros(6, 3, dtype=F64)
    pi[torch.arange(6), torch.arange(6) % 3] = 1.0
    only_s = sample_trajectories(mdp, pi, 500, 5, start_states=s0, generator=gen)
    assert torch.equal(only_s.states[:, 0], s0)
    assert torch.equal(only_s.actions, only_s.states % 3)
    assert only_s.alive.all()


def test_start_states_follow_rho():
    rho = torch.tensor([0.5, 0.0, 0.2, 0.0, 0.3, 0.0], dtype=F64)
    mdp, _ = _mdp("dense", rho=rho)
    n = 100_000
    traj = sample_trajectories(mdp, _policy(6, 3), n, 1, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(traj.states[:, 0], minlength=6).to(F64)
    assert _z_scores(counts, rho, n).max() < 5.0
    assert counts[rho == 0].sum() == 0


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_terminal_states_end_trajectories(layout):
    # A deterministic chain 0 -> 1 -> 2 (terminal): three steps, then nothing.
    P = torch.zeros(4, 2, 4, dtype=F64)
    P[0, :, 1] = P[1, :, 2] = P[3, :, 3] = 1.0
    terminal = torch.tensor([False, False, True, False])
    chain = TabularMDP(P if layout == "dense" else to_sparse(P, layout), terminal=terminal)
    traj = sample_trajectories(
        chain, _policy(4, 2), 10, 6, start_states=torch.zeros(10, dtype=torch.long), generator=torch.Generator()
    )
    assert traj.alive.tolist() == [[True, True, True, False, False, False]] * 10
    assert traj.states[:, :3].tolist() == [[0, 1, 2]] * 10
    assert traj.n_transitions == 30
    assert traj.discounts(0.5)[0].tolist() == [1.0, 0.5, 0.25, 0.0, 0.0, 0.0]

    # A random MDP with two terminal states: alive is a prefix that ends exactly at the first terminal visit.
    mdp, _ = _mdp(layout, S=8, terminal=torch.tensor([False, True, False, False, True, False, False, False]))
    traj = sample_trajectories(mdp, _policy(8, 3), 5000, 40, generator=torch.Generator().manual_seed(1))
    is_terminal = mdp.terminal[traj.states] & traj.alive
    first_end = torch.where(is_terminal.any(dim=1), is_terminal.float().argmax(dim=1), 40)
    expected_alive = torch.arange(40).unsqueeze(0) <= first_end.unsqueeze(1)
    assert torch.equal(traj.alive, expected_alive)
    assert is_terminal.sum(dim=1).max() == 1  # never past a terminal state
    assert 0 < (first_end < 40).float().mean() < 1  # some trajectories ended, some ran to the horizon


def test_all_trajectories_end_early():
    P = torch.zeros(2, 1, 2, dtype=F64)
    P[0, 0, 1] = 1.0
    mdp = TabularMDP(P, terminal=torch.tensor([False, True]), rho=torch.tensor([1.0, 0.0], dtype=F64))
    traj = sample_trajectories(mdp, torch.ones(2, 1, dtype=F64), 3, 50, generator=torch.Generator())
    assert traj.alive.sum(dim=1).tolist() == [2, 2, 2]
    assert traj.states.shape == (3, 50) and traj.states[:, 1:].eq(1).all()


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_seeded_generator_is_reproducible(layout):
    mdp, _ = _mdp(layout)
    pi = _policy(6, 3)

    def run(seed: int):
        return sample_trajectories(mdp, pi, 300, 20, generator=torch.Generator().manual_seed(seed))

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a.states, b.states) and torch.equal(a.actions, b.actions) and torch.equal(a.alive, b.alive)
    assert not torch.equal(a.states, c.states)


def test_invalid_arguments():
    mdp, _ = _mdp("dense")
    pi, gen = _policy(6, 3), torch.Generator()
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        sample_trajectories(mdp, pi, -1, 5, generator=gen)
    with pytest.raises(ValueError, match="n = 5 must be a multiple of coupled_blocks = 2"):
        sample_trajectories(mdp, pi, 5, 5, generator=gen, coupled_blocks=2)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        sample_trajectories(mdp, pi, 3, 0, generator=gen)
    with pytest.raises(ValueError, match=r"pi must have shape \(S, A\) = \(6, 3\)"):
        sample_trajectories(mdp, pi[:5], 3, 5, generator=gen)
    with pytest.raises(ValueError, match="rows that are distributions"):
        sample_trajectories(mdp, 2 * pi, 3, 5, generator=gen)
    with pytest.raises(ValueError, match=r"start_states must lie in \[0, 5\]"):
        sample_trajectories(mdp, pi, 3, 5, start_states=torch.tensor([0, 6, 1]), generator=gen)
    with pytest.raises(ValueError, match=r"start_actions must have shape \(n,\) = \(3,\)"):
        sample_trajectories(mdp, pi, 3, 5, start_actions=torch.tensor([0, 1]), generator=gen)
    with pytest.raises(TypeError, match="start_states must be a long"):
        sample_trajectories(mdp, pi, 3, 5, start_states=torch.tensor([0.0, 1.0, 2.0]), generator=gen)
