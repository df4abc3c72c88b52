"""Cost of the exact tabular hyper-gradient against the lower-level solve it needs (docs/math.md, sections 2-3).

Usage::

    python benchmarks/hypergradient.py [--quick] [--markdown PATH]

For ``gamma`` in {0.9, 0.99} and problems from ``S = 10`` to ``S = 99,856`` states (``A = 4``), it measures

- the lower-level solve: soft value iteration and soft policy iteration (Newton), both to a scaled Bellman
  residual of ``1e-10``; wall time and the sweeps / Newton steps each took;
- the hyper-gradient ALONE: ``hypergradient(prob, x, solution=sol)`` with the follower's solution already
  computed (one backward pass through ``f``, one adjoint linear solve with ``(I - gamma P_pi)^T``, one
  vector-Jacobian product through ``r_x``); the solution passed is policy iteration's;
- the ratios hyper-gradient time / solve time, for each solver;
- the peak resident memory of each phase: the process high-water mark is reset (``5`` written to
  ``/proc/self/clear_refs``) just before the phase, ``VmHWM`` read from ``/proc/self/status`` after it, and the
  resident size just before the phase (``VmRSS``) subtracted. "peak MiB solve" is the larger of the two solvers'.
  Where ``/proc`` does not allow this, "n/a".

Problems: dense random MDPs (``P(.|s, a)`` normalised uniforms, seeded) for S = 10, 100, 1000, and sparse slippery
grid worlds (:func:`sobirl.problems.gridworld.gridworld_problem`, slip 0.1) with side 32, 100, 316 (S = 1024,
10,000, 99,856). All share the same bilevel form, one leader parameter per state: reward
``r_x(s, a) = base(s, a) + tanh(x[s])``, leader objective ``f(x, pi) = 0.5e-2 |x|^2 - sum c(s, a) pi(a|s)``,
``tau = 0.1``, float64.

Timing: ``time.perf_counter``; the median time per call over batches of calls lasting at least 0.1 s each
(until about 1 s is spent, at most 5 batches), except for the largest problem, measured once.

Target: the hyper-gradient costs no more than the lower-level solve it comes with, ratio <= 1.0.

``--quick`` keeps only S <= 1024 (a smoke check of a few seconds); ``--markdown PATH`` also writes the command line,
the machine line and the table to PATH.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from sobirl.problems.gridworld import gridworld_problem
from sobirl.profiling import PeakMemory, command_line, machine_line, write_report
from sobirl.tabular import (
    BilevelProblem,
    TabularMDP,
    hypergradient,
    soft_policy_iteration,
    soft_value_iteration,
)

GAMMAS = (0.9, 0.99)
DENSE_STATES = (10, 100, 1000)
GRID_SIDES = (32, 100, 316)
QUICK_MAX_STATES = 1024
N_ACTIONS = 4
TAU = 0.1
SLIP = 0.1
TOL = 1e-10
SEED = 0
TIME_BUDGET_S = 1.0
MIN_BATCH_S = 0.1
MAX_REPEATS = 5
ONCE_ABOVE_STATES = 50_000
"""Problems larger than this (only S = 99,856) are timed once."""

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- problems


def dense_problem(n_states: int, *, gamma: float, tau: float = TAU, seed: int = SEED) -> BilevelProblem:
    """A dense random MDP with the bilevel form of :func:`gridworld_problem` (x per state, tanh shaping).

    ``P(.|s, a)`` are uniforms normalised to sum to 1 (a Dirichlet-like random distribution over all ``S`` states).
    """
    gen = torch.Generator().manual_seed(seed)
    P = torch.rand(n_states, N_ACTIONS, n_states, generator=gen, dtype=torch.float64)
    P /= P.sum(dim=2, keepdim=True)
    base = torch.rand(n_states, N_ACTIONS, generator=gen, dtype=torch.float64)
    c = torch.rand(n_states, N_ACTIONS, generator=gen, dtype=torch.float64)
    x0 = 0.1 * torch.randn(n_states, generator=gen, dtype=torch.float64)

    def reward(x: torch.Tensor) -> torch.Tensor:
        return base + torch.tanh(x).unsqueeze(1)

    def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        return 0.5e-2 * x.pow(2).sum() - (c * pi).sum()

    return BilevelProblem(TabularMDP(P, gamma=gamma, tau=tau), reward=reward, upper=upper, x0=x0)


@dataclass(frozen=True)
class Case:
    """One problem size: how to build it for a given ``gamma``."""

    n_states: int
    storage: str  # "dense" or "sparse"
    build: Callable[[float], BilevelProblem]


def cases(quick: bool) -> list[Case]:
    """The problem sizes in increasing ``S``; with ``quick`` only those up to :data:`QUICK_MAX_STATES`."""
    out = [Case(n, "dense", lambda g, n=n: dense_problem(n, gamma=g)) for n in DENSE_STATES]
    out += [
        Case(
            side * side, "sparse", lambda g, side=side: gridworld_problem(side, slip=SLIP, gamma=g, tau=TAU, seed=SEED)
        )
        for side in GRID_SIDES
    ]
    out.sort(key=lambda c: c.n_states)
    return [c for c in out if not quick or c.n_states <= QUICK_MAX_STATES]


# ---------------------------------------------------------------------------------------------- memory


# ---------------------------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class Phase:
    """Median time per call, the number of timed calls, peak memory of the first call and its result."""

    seconds: float
    repeats: int
    peak_mib: float | None
    result: object


def measure(fn: Callable[[], T], *, once: bool) -> Phase:
    """Peak memory of one run of ``fn``, then its time per call.

    Timing calls ``fn`` in batches of at least :data:`MIN_BATCH_S` (so millisecond calls are not lost in timer
    and cache noise) until about :data:`TIME_BUDGET_S` is spent, at most :data:`MAX_REPEATS` batches, and
    reports the median time per call; with ``once`` the single memory run is also the timing.
    """
    with PeakMemory() as mem:
        start = time.perf_counter()
        result = fn()
        first = time.perf_counter() - start
    if once:
        return Phase(first, 1, mem.mib, result)
    number = max(1, int(MIN_BATCH_S / max(first, 1e-9)))
    per_call: list[float] = []
    while len(per_call) < MAX_REPEATS and number * sum(per_call) < TIME_BUDGET_S:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        per_call.append((time.perf_counter() - start) / number)
    return Phase(statistics.median(per_call), number * len(per_call), mem.mib, result)


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    n_states: int
    n_actions: int
    storage: str
    nnz: int
    gamma: float
    vi: Phase
    vi_sweeps: int
    pi: Phase
    pi_steps: int
    hg: Phase


def run_case(case: Case, gamma: float, *, once: bool) -> Row:
    """Build the problem, time both solvers and the hyper-gradient, and check they agree."""
    t0 = time.perf_counter()
    prob = case.build(gamma)
    x = prob.x0
    build_s = time.perf_counter() - t0
    mdp = prob.mdp
    with torch.no_grad():
        r = prob.reward(x)
    vi = measure(lambda: soft_value_iteration(mdp, r, tol=TOL), once=once)
    pi = measure(lambda: soft_policy_iteration(mdp, r, tol=TOL), once=once)
    sol_vi, sol_pi = vi.result, pi.result
    hg = measure(lambda: hypergradient(prob, x, solution=sol_pi), once=once)
    # Consistency (untimed): both solvers reach the same fixed point, and the hyper-gradient built on either agrees.
    dv = (sol_vi.V - sol_pi.V).abs().max().item()
    g_pi = hg.result
    g_vi = hypergradient(prob, x, solution=sol_vi)
    dg = ((g_vi - g_pi).norm() / g_pi.norm().clamp(min=1e-300)).item()
    print(
        f"  S={case.n_states} {case.storage} gamma={gamma}: build {build_s:.3g} s, "
        f"VI {vi.seconds:.3g} s x{vi.repeats} ({sol_vi.iterations} sweeps), "
        f"PI {pi.seconds:.3g} s x{pi.repeats} ({sol_pi.iterations} steps), hg {hg.seconds:.3g} s x{hg.repeats}; "
        f"peak MiB VI {_mib(vi.peak_mib)} PI {_mib(pi.peak_mib)} hg {_mib(hg.peak_mib)}; "
        f"|V_vi - V_pi|_inf {dv:.1e}, rel |g_vi - g_pi| {dg:.1e}",
        file=sys.stderr,
        flush=True,
    )
    return Row(
        n_states=case.n_states,
        n_actions=mdp.n_actions,
        storage=case.storage,
        nnz=mdp.nnz,
        gamma=gamma,
        vi=vi,
        vi_sweeps=sol_vi.iterations,
        pi=pi,
        pi_steps=sol_pi.iterations,
        hg=hg,
    )


def warm_up() -> None:
    """One untimed run on tiny dense and sparse problems, so one-time library set-up is not in the first row."""
    for prob in (dense_problem(8, gamma=0.9), gridworld_problem(4, gamma=0.9)):
        with torch.no_grad():
            r = prob.reward(prob.x0)
        soft_value_iteration(prob.mdp, r, tol=TOL)
        hypergradient(prob, prob.x0, solution=soft_policy_iteration(prob.mdp, r, tol=TOL))


# ---------------------------------------------------------------------------------------------- report

COLUMNS = (
    "S",
    "A",
    "P storage",
    "nnz(P)",
    "gamma",
    "VI time (s)",
    "VI sweeps",
    "PI time (s)",
    "PI Newton steps",
    "hyper-gradient time (s)",
    "ratio hg/VI",
    "ratio hg/PI",
    "peak MiB solve",
    "peak MiB hyper-gradient",
)


def _sec(t: float) -> str:
    return f"{t:.3g}"


def _mib(m: float | None) -> str:
    return "n/a" if m is None else f"{m:.1f}"


def _max_or_none(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def table(rows: list[Row]) -> str:
    """The results as a markdown table (one row per problem size and gamma)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    for r in rows:
        cells = (
            f"{r.n_states:,}",
            str(r.n_actions),
            r.storage,
            f"{r.nnz:,}",
            f"{r.gamma:g}",
            _sec(r.vi.seconds),
            str(r.vi_sweeps),
            _sec(r.pi.seconds),
            str(r.pi_steps),
            _sec(r.hg.seconds),
            f"{r.hg.seconds / r.vi.seconds:.3f}",
            f"{r.hg.seconds / r.pi.seconds:.3f}",
            _mib(_max_or_none(r.vi.peak_mib, r.pi.peak_mib)),
            _mib(r.hg.peak_mib),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """One line: in how many rows the target ratio <= 1 holds, per solver, and the largest ratios."""
    vi = [r.hg.seconds / r.vi.seconds for r in rows]
    pi = [r.hg.seconds / r.pi.seconds for r in rows]
    return (
        f"Target hyper-gradient time <= solve time: met against VI in {sum(v <= 1.0 for v in vi)}/{len(rows)} rows "
        f"(largest ratio {max(vi):.3f}), against PI in {sum(v <= 1.0 for v in pi)}/{len(rows)} rows "
        f"(largest ratio {max(pi):.3f})."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the markdown table, optionally write it to ``--markdown``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only problems with S <= {QUICK_MAX_STATES}")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    command = command_line(argv)

    machine = machine_line()
    print(machine, flush=True)
    warm_up()
    selected = cases(args.quick)
    rows = [run_case(c, g, once=c.n_states > ONCE_ABOVE_STATES) for c in selected for g in GAMMAS]
    text = table(rows)
    print()
    print(text)
    print()
    print(summary(rows))
    if args.markdown is not None:
        write_report(args.markdown, command, [machine, text, summary(rows)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
