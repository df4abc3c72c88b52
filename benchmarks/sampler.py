"""Throughput of the batched trajectory sampler against a plain gymnasium loop over the same MDP and policy.

Usage::

    python benchmarks/sampler.py [--quick] [--markdown PATH]

For a dense random MDP and a sparse slippery grid world at S = 100 and S = 10,000 states (A = 4), with one random
softmax policy ``pi = softmax(z)``, ``z ~ N(0, 1)`` per problem (seeded), it measures transitions per second of

- batched: ONE call ``sample_trajectories(mdp, pi, n=10_000, horizon=100, generator=...)`` (10^6 transitions: no
  terminal states, so every step happens). The call's wall time includes everything it does, also building the
  alias tables of ``pi`` (on every call). The alias tables of ``P`` are built by the first call for an MDP and
  cached with it; that first call is timed on its own and reported in its own column, and the rate is the median
  over the calls after it: at least one, until about :data:`BATCH_BUDGET_S` is spent, at most :data:`MAX_REPEATS`.
- batched at a larger batch: the same with ``n = 100_000`` (10^7 transitions per call), median over up to
  :data:`MAX_LARGE_REPEATS` calls within :data:`BATCH_BUDGET_S`; it shows how the fixed cost per step amortises.
- loop: :class:`sobirl.envs.TabularEnv` over the same MDP (a random reward table ``r ~ U[0, 1)``,
  ``max_episode_steps=100``), one trajectory after another: ``reset()``, then ``step(a)`` until ``truncated``,
  with ``a ~ pi(.|s)`` drawn in the loop by inverse CDF (``numpy.random.Generator.random()`` and ``bisect`` over
  the precomputed cumulative sums of ``pi`` as a numpy array) and the discounted return accumulated as a user
  would. It runs the same 10^4 trajectories (10^6 transitions), or stops after the first complete trajectory that
  ends past :data:`LOOP_BUDGET_S` of wall time; transitions/s is then the transitions done divided by their time,
  and the time for all 10^6 is extrapolated at that rate (the table says how many were measured). Building the
  environment (its row CDFs, once per environment) is timed separately and not part of the loop's rate.
- loop with ``choice``: the same loop with the action drawn the way many users write it,
  ``int(rng.choice(A, p=pi[s]))``, for :data:`CHOICE_BUDGET_S` of wall time only (its rate is extrapolated the
  same way). It shows how much of a plain loop's cost is the action draw rather than the environment.

The ratio is batched / loop transitions per second at n = 10^4, both measured in the same run (target: >= 50);
the headline ratio uses the faster loop (inverse CDF), so it is the conservative one. The batched sampler runs on
:data:`THREADS` torch thread (``--threads``), as the loop runs on one core: the ratio compares one core with one
core. A second thread would only speed up the operations on more than 32768 elements (torch's grain size: the
preparation and copies of each chunk of steps, the table builds, every step at n = 10^5), and on a 2-core machine
whose other core is busy it makes each of them wait for that core.

Problems: dense ``P(.|s, a)`` = normalised uniforms over all ``S`` states (seeded; at S = 10,000 this is
``S * A * S`` = 4e8 float64, 3.2 GB, and the sampler's cached alias tables of it take 3.2 GB more);
sparse ``P``: :func:`sobirl.problems.gridworld.gridworld_mdp` (side 10 and 100, slip 0.1, at most 4 successors).

As a check that both sample the same process, the mean reward per transition of each is printed to stderr with its
standard error (they agree to a few standard errors).

``--quick`` keeps S = 100 and loop budgets of 2 s and 1 s (a smoke check of a few seconds); ``--markdown PATH``
also writes the command line, the machine line and the table to PATH.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sobirl.envs import TabularEnv
from sobirl.problems.gridworld import gridworld_mdp
from sobirl.profiling import command_line, machine_line, write_report
from sobirl.tabular import TabularMDP, sample_trajectories

N_TRAJECTORIES = 10_000
N_LARGE = 100_000
HORIZON = 100
N_ACTIONS = 4
GAMMA = 0.9
SIZES = (100, 10_000)
QUICK_SIZES = (100,)
BATCH_BUDGET_S = 3.0
MAX_REPEATS = 5
MAX_LARGE_REPEATS = 3
LOOP_BUDGET_S = 20.0
QUICK_LOOP_BUDGET_S = 2.0
CHOICE_BUDGET_S = 3.0
QUICK_CHOICE_BUDGET_S = 1.0
SEED = 0
TARGET_RATIO = 50.0
THREADS = 1


# ---------------------------------------------------------------------------------------------- problems


def dense_mdp(n_states: int, *, seed: int = SEED) -> TabularMDP:
    """A dense random MDP: ``P(.|s, a)`` normalised uniforms over all ``S`` states."""
    gen = torch.Generator().manual_seed(seed)
    P = torch.rand(n_states, N_ACTIONS, n_states, generator=gen, dtype=torch.float64)
    P /= P.sum(dim=2, keepdim=True)
    return TabularMDP(P, gamma=GAMMA)


def sparse_mdp(n_states: int) -> TabularMDP:
    """The slippery grid world with ``side**2 = n_states`` (sparse ``P``, at most 4 successors per row)."""
    side = round(n_states**0.5)
    assert side * side == n_states, n_states
    return gridworld_mdp(side, gamma=GAMMA)


def random_policy_and_reward(S: int, *, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """A random softmax policy and a ``U[0, 1)`` reward table, both ``(S, A)`` float64."""
    gen = torch.Generator().manual_seed(seed + 1)
    pi = torch.softmax(torch.randn(S, N_ACTIONS, generator=gen, dtype=torch.float64), dim=1)
    return pi, torch.rand(S, N_ACTIONS, generator=gen, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class Batched:
    """The batched sampler: the first call's seconds (it builds the MDP's cached tables), the median seconds per
    later call, how many later calls were timed, transitions per call, mean reward and its s.e."""

    first_seconds: float
    seconds: float
    repeats: int
    transitions: int
    mean_reward: float
    se_reward: float

    @property
    def rate(self) -> float:
        """Transitions per second of the later calls."""
        return self.transitions / self.seconds


@dataclass(frozen=True)
class Loop:
    """The gymnasium loop: environment build time, transitions done, their time, mean reward and its s.e."""

    build_seconds: float
    seconds: float
    transitions: int
    mean_reward: float
    se_reward: float

    @property
    def rate(self) -> float:
        """Transitions per second."""
        return self.transitions / self.seconds


def run_batched(
    mdp: TabularMDP, pi: torch.Tensor, r: torch.Tensor, *, n: int = N_TRAJECTORIES, max_repeats: int = MAX_REPEATS
) -> Batched:
    """Time ``sample_trajectories`` with ``n`` x :data:`HORIZON` (see the module docstring): the first call, then
    the median of the later ones."""
    gen = torch.Generator().manual_seed(SEED + 2)
    start = time.perf_counter()
    traj = sample_trajectories(mdp, pi, n, HORIZON, generator=gen)
    first = time.perf_counter() - start
    times: list[float] = []
    while not times or (len(times) < max_repeats and sum(times) < BATCH_BUDGET_S):
        traj = None  # free the previous call's output before the next
        start = time.perf_counter()
        traj = sample_trajectories(mdp, pi, n, HORIZON, generator=gen)
        times.append(time.perf_counter() - start)
    assert traj is not None
    rewards = r[traj.states, traj.actions][traj.alive]
    return Batched(
        first_seconds=first,
        seconds=statistics.median(times),
        repeats=len(times),
        transitions=traj.n_transitions,
        mean_reward=rewards.mean().item(),
        se_reward=(rewards.std() / rewards.numel() ** 0.5).item(),
    )


def run_loop(mdp: TabularMDP, pi: torch.Tensor, r: torch.Tensor, *, budget_s: float, choice: bool = False) -> Loop:
    """Time the plain gymnasium loop (see the module docstring), stopping after ``budget_s`` of wall time.

    With ``choice`` the action is drawn with ``rng.choice(A, p=pi[s])`` instead of the inverse CDF.
    """
    start = time.perf_counter()
    env = TabularEnv(mdp, r, max_episode_steps=HORIZON)
    build_seconds = time.perf_counter() - start

    A = mdp.n_actions
    pi_cdf = np.cumsum(pi.numpy(), axis=1)
    pi_cdf /= pi_cdf[:, -1:]  # each row ends at exactly 1.0, so a uniform in [0, 1) never selects past it
    pi_cdf = pi_cdf.reshape(-1)
    pi_rows = pi.numpy()
    rng = np.random.default_rng(SEED + 3)
    env.reset(seed=SEED + 4)
    total_reward = total_sq = 0.0
    transitions = 0
    start = time.perf_counter()
    for _ in range(N_TRAJECTORIES):
        s, _ = env.reset()
        ret, discount, done = 0.0, 1.0, False
        while not done:
            if choice:
                a = int(rng.choice(A, p=pi_rows[s]))
            else:
                lo = s * A
                a = bisect_right(pi_cdf, rng.random(), lo, lo + A) - lo
            s, reward, terminated, truncated, _ = env.step(a)
            ret += discount * reward
            discount *= GAMMA
            total_reward += reward
            total_sq += reward * reward
            transitions += 1
            done = terminated or truncated
        if time.perf_counter() - start > budget_s:
            break
    seconds = time.perf_counter() - start
    mean = total_reward / transitions
    var = max(total_sq / transitions - mean * mean, 0.0)
    return Loop(build_seconds, seconds, transitions, mean, (var / transitions) ** 0.5)


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    n_states: int
    storage: str
    nnz: int
    batched: Batched
    large: Batched
    loop: Loop
    loop_choice: Loop


def run_case(n_states: int, storage: str, *, loop_budget_s: float, choice_budget_s: float) -> Row:
    """Build the problem, time the batched sampler, then the loop (one at a time, to bound peak memory)."""
    start = time.perf_counter()
    mdp = dense_mdp(n_states) if storage == "dense" else sparse_mdp(n_states)
    build_s = time.perf_counter() - start
    pi, r = random_policy_and_reward(n_states)
    batched = run_batched(mdp, pi, r)
    gc.collect()
    large = run_batched(mdp, pi, r, n=N_LARGE, max_repeats=MAX_LARGE_REPEATS)
    gc.collect()
    loop = run_loop(mdp, pi, r, budget_s=loop_budget_s)
    gc.collect()
    loop_choice = run_loop(mdp, pi, r, budget_s=choice_budget_s, choice=True)
    gc.collect()
    print(
        f"  S={n_states} {storage}: MDP build {build_s:.3g} s; batched first call {batched.first_seconds:.3g} s, "
        f"then {batched.seconds:.3g} s x{batched.repeats} for {batched.transitions:,} transitions (n = {N_LARGE:,}: "
        f"{large.seconds:.3g} s x{large.repeats}); loop {loop.seconds:.3g} s for {loop.transitions:,} transitions "
        f"(env build {loop.build_seconds:.3g} s); mean reward per transition batched "
        f"{batched.mean_reward:.4f} +/- {batched.se_reward:.4f}, loop {loop.mean_reward:.4f} +/- {loop.se_reward:.4f}; "
        f"choice loop {loop_choice.seconds:.3g} s for {loop_choice.transitions:,} transitions",
        file=sys.stderr,
        flush=True,
    )
    return Row(n_states, storage, mdp.nnz, batched, large, loop, loop_choice)


def warm_up() -> None:
    """Untimed runs on tiny problems, so one-time library set-up is not in the first row."""
    for mdp in (dense_mdp(4), sparse_mdp(4)):
        pi, r = random_policy_and_reward(4)
        sample_trajectories(mdp, pi, 64, 8, generator=torch.Generator().manual_seed(0))
        env = TabularEnv(mdp, r, max_episode_steps=8)
        env.reset(seed=0)
        for _ in range(8):
            env.step(0)


# ---------------------------------------------------------------------------------------------- report

COLUMNS = (
    "S",
    "A",
    "P storage",
    "nnz(P)",
    "batched: first call (s), builds the tables of P",
    "batched: s per later call (10^6 transitions)",
    "batched transitions/s",
    "loop: transitions measured",
    "loop: s measured",
    "loop transitions/s",
    "loop: s for 10^6 transitions",
    "env build (s)",
    "ratio batched/loop",
    "loop with choice: transitions measured",
    "loop with choice: transitions/s",
    "ratio batched/loop with choice",
    "batched at n = 10^5: transitions/s",
    "ratio at n = 10^5 / loop",
)


def table(rows: list[Row]) -> str:
    """The results as a markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    full = N_TRAJECTORIES * HORIZON
    for r in rows:
        b, lp = r.batched, r.loop
        loop_full = f"{full / lp.rate:.3g}" + ("" if lp.transitions >= full else " (extrapolated)")
        cells = (
            f"{r.n_states:,}",
            str(N_ACTIONS),
            r.storage,
            f"{r.nnz:,}",
            f"{b.first_seconds:.3g}",
            f"{b.seconds:.3g}",
            f"{b.rate:.3g}",
            f"{lp.transitions:,}",
            f"{lp.seconds:.3g}",
            f"{lp.rate:.3g}",
            loop_full,
            f"{lp.build_seconds:.3g}",
            f"{b.rate / lp.rate:.3g}",
            f"{r.loop_choice.transitions:,}",
            f"{r.loop_choice.rate:.3g}",
            f"{b.rate / r.loop_choice.rate:.3g}",
            f"{r.large.rate:.3g}",
            f"{r.large.rate / lp.rate:.3g}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """One line: in how many rows the target ratio holds (against the faster loop, at n = 10^4), and the range of
    ratios."""
    ratios = [r.batched.rate / r.loop.rate for r in rows]
    choice = [r.batched.rate / r.loop_choice.rate for r in rows]
    large = [r.large.rate / r.loop.rate for r in rows]
    met = sum(x >= TARGET_RATIO for x in ratios)
    return (
        f"Target batched/loop >= {TARGET_RATIO:g} at n = {N_TRAJECTORIES:,}: met in {met}/{len(rows)} rows "
        f"(ratios from {min(ratios):.3g} to {max(ratios):.3g}; against the loop drawing actions with "
        f"rng.choice: {min(choice):.3g} to {max(choice):.3g}; at n = {N_LARGE:,}: {min(large):.3g} to "
        f"{max(large):.3g})."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the markdown table, optionally write it to ``--markdown``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only S = 100, 2 s loop budget")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table to this markdown file")
    parser.add_argument(
        "--threads", type=int, default=THREADS, help=f"torch threads for the batched sampler (default {THREADS})"
    )
    args = parser.parse_args(argv)
    command = command_line(argv)

    torch.set_num_threads(args.threads)
    machine = machine_line()
    print(machine, flush=True)
    started = time.perf_counter()
    warm_up()
    sizes = QUICK_SIZES if args.quick else SIZES
    budget = QUICK_LOOP_BUDGET_S if args.quick else LOOP_BUDGET_S
    choice_budget = QUICK_CHOICE_BUDGET_S if args.quick else CHOICE_BUDGET_S
    rows = [
        run_case(S, storage, loop_budget_s=budget, choice_budget_s=choice_budget)
        for S in sizes
        for storage in ("dense", "sparse")
    ]
    elapsed = time.perf_counter() - started
    text = table(rows)
    print()
    print(text)
    print()
    print(summary(rows))
    if args.markdown is not None:
        write_report(args.markdown, command, [machine, text, summary(rows)], elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
