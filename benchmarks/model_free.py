"""Sampled transitions each model-free method needs to bring the exact ``|grad phi|^2`` under a threshold.

Usage::

    python benchmarks/model_free.py [--quick] [--seeds N] [--workers N] [--markdown PATH]

For each problem, every method runs ``solve(prob, prob.x0, method, K, evaluate_every=e, ...)`` once per seed
(seeds ``0 .. N-1``, the method's own ``seed`` parameter). ``solve`` records the exact ``phi(x_k)`` and
``|grad phi(x_k)|`` (never counted in the run's wall time) every ``e`` iterations. For each threshold ``T`` the
crossing is the first evaluated iteration ``k`` with ``|grad phi(x_k)|^2 <= T``; the cost of reaching ``x_k`` is
what the ``k`` steps before it spent: ``k`` iterations, the transitions they sampled (``samples_total`` of
iteration ``k - 1``; iteration ``k``'s own samples are drawn at ``x_k``, after it is reached) and their wall time
(``wall_time`` of iteration ``k - 1``). A run that never gets under ``T`` is "not reached", with its last
evaluated ``|grad phi|^2``. Rows give mean +/- standard error over the seeds that reached ``T``; the ratio is a
row's mean transitions over the smallest mean among the rows where every seed reached ``T`` (same run, same
threshold). ``exact`` (gradient descent with the exact hyper-gradient, ``P`` known) is deterministic: run once,
no samples, the reference for the thresholds and the iterations.

A small ``|grad phi|^2`` is not always progress: on four-rooms a noisy step can land ``x`` on a flat stretch of
``phi`` (the incentives are a softmax). So the same is reported for targets on the exact objective,
``phi(x_k) <= target``, each with the ``phi`` at the crossing and a table of the whole runs (final ``phi``, final
and smallest ``|grad phi|^2``, transitions and wall time in all).

Problems, settings and lower levels:

- ``four-rooms``: :func:`sobirl.problems.four_rooms` with ``gamma = 0.99`` (lam 0.003, c 1, fail_prob 0.33; HPGD's
  problem; two goal contexts, so the follower's table has ``S A = 208 * 4``), ``K = 300``, evaluated every 2
  iterations, thresholds 1e-3, 3e-4, 1e-4 (``|grad phi(x0)|^2 = 2.8e-3``; ``exact`` reaches them after about 46,
  132 and 218 iterations), targets ``phi <= -0.3``, ``-0.45`` (``phi(x0) = -0.2``; ``exact``: 30, 164 iterations).
  Every method uses the problem's leader step ``beta = 2`` with clipping at 1 (``prob.defaults``). At
  ``gamma = 0.9`` the same step barely moves ``x`` (``|grad phi|`` ~ 5e-3 stays put for 200 iterations).
- ``tabular-rlhf``: :func:`sobirl.problems.tabular_rlhf` (S 3, A 2, H 3), ``K = 200``, evaluated every iteration,
  thresholds 1e-3, 1e-4, 1e-5 (``|grad phi(x0)|^2 = 4.1e-2``; ``exact``: 28, 55, 87 iterations), targets
  ``phi <= 0.625``, ``0.6225`` (``phi(x0) = log 2``, ``exact`` ends at 0.62202), every method ``beta = 0.3`` and no
  clipping (``prob.defaults``). ``hpgd`` cannot run on it: its upper objective is a preference loss, not the
  leader's value (the tables quote its error).

Methods (every parameter not listed is the method's default; see their Configs):

- ``sobirl-mf``: batch 1000 draws per estimate (preference pairs or trajectories), estimator ``td-critic``, horizon
  0 (the smallest ``H`` with ``gamma^H <= 1e-4``: 917 at 0.99; four-rooms trajectories end earlier, at a goal),
  constant ``beta``.
- ``stoc-sobirl``: the same with batch 64, STORM ``eta = 0.5``, ``decay = 100`` (``beta_k = beta (1 + k/100)^(-1/3)``).
- Both with ``lower = "q-learning"`` (their default): a sample-based soft Q-learning follower, 10 updates of the
  whole table per iteration with 16 sampled successors per ``(s, a)``, step 0.5, warm-started; its transitions
  (``10 * 16 * S * A`` per iteration: 133,120 on four-rooms, 960 on tabular-rlhf) are counted. And both with
  ``lower = "exact"``: the follower solved by soft policy iteration with ``P`` known, so only the upper level's
  transitions are counted (rows "..., exact follower").
- ``hpgd``: batch 64 trajectories, horizon 100, ``leader_q = "continuation"``. It ALWAYS solves its follower
  exactly (soft policy iteration, ``P`` known) and counts only its trajectories and rollouts, like the
  ``lower = "exact"`` rows; against the ``q-learning`` rows that favours it. Its ratio is to the best row of
  either kind, as every row's is: compare it with the "exact follower" rows for a like-for-like count.

``--seeds N``: seeds per seeded method (default 5). ``--quick`` (a smoke run of seconds): one seed, 6 iterations
on four-rooms and 30 on tabular-rlhf. ``--workers N`` runs the ``(problem, method, seed)`` runs in N processes
(default 1); every process uses one torch thread. ``--markdown PATH`` writes the command, the machine line and
the tables to PATH.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from sobirl.algorithms import resolve_config, solve
from sobirl.problems import four_rooms, tabular_rlhf
from sobirl.profiling import command_line, machine_line
from sobirl.tabular import BilevelProblem

QUICK_ITERATIONS = {"four-rooms": 6, "tabular-rlhf": 30}
MODEL_FREE_LOWER = "soft Q-learning (sampled, counted)"
EXACT_LOWER = "soft policy iteration (P known)"
GRAD_SQ = "\\|grad phi\\|^2"
"""``|grad phi|^2`` with the bars escaped for a markdown table cell."""


@dataclass(frozen=True)
class Variant:
    """One row group: a method with its parameters (beyond the problem's shared step) and its lower level."""

    label: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    lower: str = MODEL_FREE_LOWER
    seeded: bool = True
    """False for the deterministic ``exact`` reference: run once, ``seed`` not passed."""


@dataclass(frozen=True)
class Criterion:
    """``|grad phi(x_k)|^2 <= value`` (``kind = "grad"``) or ``phi(x_k) <= value`` (``kind = "phi"``)."""

    kind: str
    value: float

    def met(self, grad_sq: float, phi: float) -> bool:
        """Whether an evaluated iterate with these exact values meets the criterion."""
        return (grad_sq if self.kind == "grad" else phi) <= self.value

    @property
    def text(self) -> str:
        """As plain text."""
        return f"|grad phi|^2 <= {self.value:g}" if self.kind == "grad" else f"phi <= {self.value:g}"

    @property
    def label(self) -> str:
        """As a markdown table cell."""
        return self.text.replace("|", "\\|")


@dataclass(frozen=True)
class Setting:
    """A problem with its budget, its evaluation stride, its criteria and the methods run on it."""

    name: str
    build: Callable[[], BilevelProblem]
    description: str
    iterations: int
    evaluate_every: int
    thresholds: tuple[float, ...]
    """On the exact ``|grad phi|^2``: the benchmark's criteria."""
    targets: tuple[float, ...]
    """On the exact ``phi``: a check that a crossing is progress, not a flat spot."""
    variants: tuple[Variant, ...]
    left_out: str = ""
    """A method that cannot run on the problem (its error is quoted in the report)."""


def _four_rooms() -> BilevelProblem:
    """HPGD's four-rooms problem at gamma 0.99 (a module-level function, so worker processes can build it)."""
    return four_rooms(gamma=0.99)


def _tabular_rlhf() -> BilevelProblem:
    """The tabular RLHF problem with the builder's defaults."""
    return tabular_rlhf()


MF_EXACT = {"lower": "exact"}
MODEL_FREE_VARIANTS = (
    Variant("sobirl-mf", "sobirl-mf", {"batch": 1000}),
    Variant("stoc-sobirl", "stoc-sobirl", {"batch": 64}),
    Variant("sobirl-mf, exact follower", "sobirl-mf", {"batch": 1000, **MF_EXACT}, EXACT_LOWER),
    Variant("stoc-sobirl, exact follower", "stoc-sobirl", {"batch": 64, **MF_EXACT}, EXACT_LOWER),
)
EXACT_VARIANT = Variant("exact (reference)", "exact", {}, f"{EXACT_LOWER}; exact hyper-gradient", seeded=False)

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            name="four-rooms",
            build=_four_rooms,
            description="four_rooms(gamma=0.99): beta 2, clip 1 for every method",
            iterations=300,
            evaluate_every=2,
            thresholds=(1e-3, 3e-4, 1e-4),
            targets=(-0.3, -0.45),
            variants=(
                EXACT_VARIANT,
                Variant("hpgd", "hpgd", {"batch": 64, "horizon": 100}, f"{EXACT_LOWER}, always"),
                *MODEL_FREE_VARIANTS,
            ),
        ),
        Setting(
            name="tabular-rlhf",
            build=_tabular_rlhf,
            description="tabular_rlhf() (S 3, A 2, H 3): beta 0.3, no clipping for every method",
            iterations=200,
            evaluate_every=1,
            thresholds=(1e-3, 1e-4, 1e-5),
            targets=(0.625, 0.6225),
            variants=(EXACT_VARIANT, *MODEL_FREE_VARIANTS),
            left_out="hpgd",
        ),
    )
}


def criteria(setting: Setting) -> tuple[Criterion, ...]:
    """The gradient thresholds, then the objective targets."""
    return tuple(Criterion("grad", t) for t in setting.thresholds) + tuple(Criterion("phi", t) for t in setting.targets)


# ---------------------------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class Crossing:
    """The first evaluated iterate meeting a criterion and what the steps before it spent."""

    iteration: int
    samples: float | None
    seconds: float
    phi: float


@dataclass(frozen=True)
class RunResult:
    """One ``(problem, method, seed)`` run: its crossings (None: not reached) and how it ended."""

    setting: str
    label: str
    seed: int
    crossings: tuple[Crossing | None, ...]
    iterations: int
    samples: float | None
    seconds: float
    final_grad_sq: float
    final_phi: float
    min_grad_sq: float


@dataclass(frozen=True)
class Job:
    """What a worker needs to do one run (picklable)."""

    setting: str
    variant: int
    seed: int
    iterations: int


def run_job(job: Job) -> RunResult:
    """Run one method on one problem with one seed and find its crossings."""
    torch.set_num_threads(1)
    setting = SETTINGS[job.setting]
    variant = setting.variants[job.variant]
    prob = setting.build()
    params = {**variant.params, **({"seed": job.seed} if variant.seeded else {})}
    assert prob.x0 is not None
    result = solve(prob, prob.x0, variant.method, job.iterations, evaluate_every=setting.evaluate_every, **params)
    rows = result.history.rows
    evaluated = [
        (int(r["iteration"]), r["exact_grad_norm"] ** 2, r["exact_objective"]) for r in rows if "exact_grad_norm" in r
    ]

    def spent(k: int, column: str) -> float:
        return 0.0 if k == 0 else rows[k - 1][column]

    counted = "samples_total" in rows[0]
    crossings = []
    for criterion in criteria(setting):
        hit = next(((k, phi) for k, g2, phi in evaluated if criterion.met(g2, phi)), None)
        crossings.append(
            None
            if hit is None
            else Crossing(
                hit[0], spent(hit[0], "samples_total") if counted else None, spent(hit[0], "wall_time"), hit[1]
            )
        )
    out = RunResult(
        setting=job.setting,
        label=variant.label,
        seed=job.seed,
        crossings=tuple(crossings),
        iterations=len(rows),
        samples=rows[-1]["samples_total"] if counted else None,
        seconds=rows[-1]["wall_time"],
        final_grad_sq=evaluated[-1][1],
        final_phi=evaluated[-1][2],
        min_grad_sq=min(g2 for _, g2, _ in evaluated),
    )
    reached = ", ".join(
        f"{t.text}: {'-' if c is None else c.iteration}" for t, c in zip(criteria(setting), crossings, strict=True)
    )
    print(
        f"  {job.setting} | {variant.label} | seed {job.seed}: {out.seconds:.1f} s, crossings at ({reached}), "
        f"final |grad phi|^2 {out.final_grad_sq:.1e}, phi {out.final_phi:.4f}",
        file=sys.stderr,
        flush=True,
    )
    return out


# ---------------------------------------------------------------------------------------------- tables


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation over sqrt(n); 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def fmt(values: list[float], spec: str) -> str:
    """``mean +/- se`` of ``values`` (just the value for one run)."""
    mean, se = mean_se(values)
    if len(values) == 1:
        return format(mean, spec)
    return f"{format(mean, spec)} +/- {format(se, spec)}"


def crossing_table(setting: Setting, results: list[RunResult], kind: str) -> str:
    """Per criterion of ``kind`` and method: seeds that met it, iterations, transitions, ratio to best, wall time,
    phi at the crossing; runs that never met it give their final value instead."""
    head = (
        "| criterion | method | lower level | reached | iterations | transitions sampled | ratio to best "
        "| wall time (s) | phi at crossing |\n|---|---|---|---|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for i, criterion in enumerate(criteria(setting)):
        if criterion.kind != kind:
            continue
        groups = [(v, [r for r in results if r.label == v.label]) for v in setting.variants]
        means: dict[str, float] = {}  # mean transitions of the rows where every seed met the criterion
        for variant, runs in groups:
            counts = [c.samples for c in (r.crossings[i] for r in runs) if c is not None and c.samples is not None]
            if runs and len(counts) == len(runs):
                means[variant.label] = mean_se(counts)[0]
        best = min(means.values()) if means else None
        for variant, runs in groups:
            if not runs:
                continue
            hits = [c for c in (r.crossings[i] for r in runs) if c is not None]
            missed = [r.final_grad_sq if kind == "grad" else r.final_phi for r in runs if r.crossings[i] is None]
            reached = f"{len(hits)}/{len(runs)}"
            if missed:
                what = GRAD_SQ if kind == "grad" else "phi"
                reached += f" (not reached: final {what} {fmt(missed, '.1e' if kind == 'grad' else '.4f')})"
            if not hits:
                cells = ["-"] * 5
            else:
                samples = [c.samples for c in hits if c.samples is not None]
                if variant.label in means and best is not None:
                    ratio = f"{means[variant.label] / best:.2f}" + (" (best)" if means[variant.label] == best else "")
                else:
                    ratio = "-"
                cells = [
                    fmt([float(c.iteration) for c in hits], ".1f"),
                    fmt(samples, ".3g") if samples else "0 (reads P)",
                    ratio,
                    fmt([c.seconds for c in hits], ".3g"),
                    fmt([c.phi for c in hits], ".4f"),
                ]
            lines.append(
                f"| {criterion.label} | {variant.label} | {variant.lower} | {reached} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def runs_table(setting: Setting, results: list[RunResult]) -> str:
    """Per method, the whole run: transitions, wall time, final and smallest ``|grad phi|^2``, final ``phi``."""
    lines = [
        "| method | runs | transitions in all | wall time (s) | final phi | final \\|grad phi\\|^2 "
        "| smallest \\|grad phi\\|^2 |\n|---|---:|---:|---:|---:|---:|---:|"
    ]
    for variant in setting.variants:
        runs = [r for r in results if r.label == variant.label]
        if not runs:
            continue
        samples = [r.samples for r in runs if r.samples is not None]
        cells = [
            str(len(runs)),
            fmt(samples, ".3g") if samples else "0 (reads P)",
            fmt([r.seconds for r in runs], ".3g"),
            fmt([r.final_phi for r in runs], ".4f"),
            fmt([r.final_grad_sq for r in runs], ".1e"),
            fmt([r.min_grad_sq for r in runs], ".1e"),
        ]
        lines.append(f"| {variant.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def left_out_line(setting: Setting) -> str:
    """Why a method is missing from a problem, in the method's own words."""
    if not setting.left_out:
        return ""
    try:
        resolve_config(setting.build(), setting.left_out, {})
    except ValueError as err:
        return f"\n\n`{setting.left_out}` does not run here: {err}"
    return ""


def report(results: list[RunResult], iterations: dict[str, int]) -> str:
    """Every problem's settings line, crossing table and runs table."""
    parts = []
    for setting in SETTINGS.values():
        mine = [r for r in results if r.setting == setting.name]
        parts.append(
            f"### {setting.name}\n\n{setting.description}; {iterations[setting.name]} iterations, exact phi and "
            f"|grad phi| evaluated every {setting.evaluate_every}.{left_out_line(setting)}\n\n"
            f"Transitions to |grad phi|^2 <= threshold:\n\n{crossing_table(setting, mine, 'grad')}\n\n"
            f"Transitions to phi <= target (is the crossing progress?):\n\n{crossing_table(setting, mine, 'phi')}\n\n"
            f"Whole runs:\n\n{runs_table(setting, mine)}"
        )
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run every ``(problem, method, seed)``, print the tables, optionally write them to ``--markdown``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, a few iterations: a smoke run of seconds")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5; 1 with --quick)")
    parser.add_argument("--workers", type=int, default=1, help="processes for the runs (default 1)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the command, machine line and tables here")
    args = parser.parse_args(argv)
    command = command_line(argv)
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 5)
    if seeds < 1 or args.workers < 1:
        parser.error("--seeds and --workers must be >= 1")
    iterations = {
        name: QUICK_ITERATIONS[name] if args.quick else setting.iterations for name, setting in SETTINGS.items()
    }

    torch.set_num_threads(1)
    machine = machine_line()
    print(f"Command: {command}\n{machine}", flush=True)
    jobs = [
        Job(name, i, seed, iterations[name])
        for name, setting in SETTINGS.items()
        for i, variant in enumerate(setting.variants)
        for seed in (range(seeds) if variant.seeded else range(1))
    ]
    start = time.perf_counter()
    if args.workers == 1:
        results = [run_job(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            results = list(pool.map(run_job, jobs))
    elapsed = time.perf_counter() - start
    text = report(results, iterations)
    print()
    print(text)
    print(f"\nTotal {elapsed:.0f} s ({len(jobs)} runs, {args.workers} worker(s)).")
    if args.markdown is not None:
        with open(args.markdown, "w") as fh:
            fh.write(f"Command: `{command}` ({elapsed:.0f} s, {args.workers} worker(s))\n\n{machine}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
