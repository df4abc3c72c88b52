"""Compare methods on one problem over seeds, with the same budget: ``sobirl compare``.

Every (method, seed) pair is one trial: the problem is built for the seed, the method runs for the same number
of outer iterations, and the exact ``phi`` and ``|grad phi|`` are recorded every ``evaluate_every`` iterations
(outside the method's timed work, so wall times compare the methods alone). Trials run in parallel worker
processes with one torch thread each. Each trial writes its metrics CSV; the comparison writes a markdown table
(final objective mean +/- standard error over seeds, :func:`~sobirl.experiments.aggregate.mean_and_se`, work
counters, wall time); :func:`~sobirl.experiments.figures.plot_comparison` draws the exact objective against the
iteration and against wall time with mean +/- s.e. bands.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sobirl.algorithms import METHODS, resolve_config, solve
from sobirl.experiments.aggregate import mean_and_se
from sobirl.problems import PROBLEMS
from sobirl.tabular.problem import BilevelProblem
from sobirl.validation import check_choice, check_int

COUNTERS = ("hvp_total", "oracle_calls", "samples_total")
"""Cumulative work counters a method may record; the table reports those present."""


@dataclass(frozen=True)
class TrialSpec:
    """One (method, seed) run of a comparison."""

    problem: str
    problem_params: dict[str, Any]
    method: str
    method_params: dict[str, Any]
    seed: int
    iterations: int
    evaluate_every: int
    metrics_path: Path


@dataclass
class TrialResult:
    """What a trial returns to the comparison: its spec and its rows (or the error that ended it)."""

    spec: TrialSpec
    rows: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None


TRIALS_DIR = "trials"
"""The folder of a comparison's run directory with one metrics CSV per trial."""


def trial_path(run_dir: str | Path, method: str, seed: int) -> Path:
    """The metrics CSV of one trial of a comparison: ``run_dir/trials/<method>-seed<seed>.csv``."""
    return Path(run_dir) / TRIALS_DIR / f"{method}-seed{seed}.csv"


def build_problem(name: str, params: dict[str, Any], seed: int) -> BilevelProblem:
    """Build a registered problem; builders that take a ``seed`` get the trial's seed."""
    builder = PROBLEMS[check_choice("problem", name, PROBLEMS)]
    if "seed" in inspect.signature(builder).parameters and "seed" not in params:
        params = {**params, "seed": seed}
    prob = builder(**params)
    if prob.x0 is None:
        raise ValueError(f"problem {name!r} sets no starting point x0")
    return prob


def method_params_for(method: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The method's parameters with the trial's seed added when its Config has a ``seed`` field."""
    fields = {f.name for f in dataclasses.fields(METHODS[method].Config)}
    return {**params, "seed": seed} if "seed" in fields and "seed" not in params else dict(params)


def validate(
    problem: str, problem_params: dict[str, Any], methods: Sequence[str], method_params: dict[str, dict[str, Any]]
) -> None:
    """Reject unknown names and invalid parameters before any trial starts (builds each problem and Config once)."""
    for method in methods:
        check_choice("method", method, METHODS)
    for method in method_params:
        if method not in methods:
            raise ValueError(f"parameters given for method {method!r}, which is not compared ({', '.join(methods)})")
    prob = build_problem(problem, problem_params, seed=0)
    for method in methods:
        resolve_config(prob, method, method_params_for(method, method_params.get(method, {}), 0))


def run_trial(spec: TrialSpec) -> TrialResult:
    """Run one trial in this process and write its metrics CSV; a failure is returned, never raised."""
    torch.set_num_threads(1)  # trials run side by side, one per core
    result = TrialResult(spec)
    try:
        prob = build_problem(spec.problem, spec.problem_params, spec.seed)
        params = method_params_for(spec.method, spec.method_params, spec.seed)
        res = solve(prob, prob.x0, spec.method, spec.iterations, evaluate_every=spec.evaluate_every, **params)
        result.rows = res.history.rows
    except Exception as err:  # a failed trial is reported in the table, the others go on
        result.error = f"{type(err).__name__}: {err}"
    if result.rows:
        spec.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.metrics_path, "w", newline="") as fh:
            columns = list(dict.fromkeys(key for row in result.rows for key in row))
            writer = csv.DictWriter(fh, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(result.rows)
    return result


def run_trials(
    specs: Sequence[TrialSpec], *, workers: int, on_done: Callable[[TrialResult], None] | None = None
) -> list[TrialResult]:
    """Run trials on ``workers`` processes (in this process when 1); results in the order of ``specs``."""
    check_int("workers", workers, low=1)
    if workers == 1:
        results = []
        for spec in specs:
            results.append(run_trial(spec))
            if on_done:
                on_done(results[-1])
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_trial, spec) for spec in specs]
        results = []
        for future in futures:
            results.append(future.result())
            if on_done:
                on_done(results[-1])
        return results


@dataclass(frozen=True)
class MethodSummary:
    """Final numbers of one method over its seeds."""

    method: str
    seeds: int
    failed: int
    objective_mean: float
    objective_se: float
    grad_norm_mean: float
    wall_time_mean: float
    counters: dict[str, float]


def summarise(results: Iterable[TrialResult]) -> list[MethodSummary]:
    """Mean and standard error of the final exact objective per method (failed trials counted, not averaged)."""
    by_method: dict[str, list[TrialResult]] = {}
    for result in results:
        by_method.setdefault(result.spec.method, []).append(result)
    summaries = []
    for method, trials in by_method.items():
        done = [t for t in trials if t.error is None]
        finals = [_last(t.rows, "exact_objective") for t in done]
        objective, objective_se = mean_and_se(finals) if finals else (math.nan, 0.0)
        summaries.append(
            MethodSummary(
                method=method,
                seeds=len(trials),
                failed=len(trials) - len(done),
                objective_mean=float(objective),
                objective_se=float(objective_se),
                grad_norm_mean=statistics.fmean(_last(t.rows, "exact_grad_norm") for t in done) if done else math.nan,
                wall_time_mean=statistics.fmean(t.rows[-1]["wall_time"] for t in done) if done else math.nan,
                counters={
                    name: statistics.fmean(_last(t.rows, name) for t in done)
                    for name in COUNTERS
                    if done and all(name in t.rows[-1] for t in done)
                },
            )
        )
    return summaries


def markdown_table(summaries: Sequence[MethodSummary], iterations: int) -> str:
    """The comparison table in markdown."""
    lines = [
        "| method | final objective (mean +/- s.e.) | final grad norm | iterations | work | wall time (s) | failed |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for s in summaries:
        work = ", ".join(f"{name} {value:.3g}" for name, value in s.counters.items()) or "-"
        lines.append(
            f"| {s.method} | {s.objective_mean:.6g} +/- {s.objective_se:.2g} | {s.grad_norm_mean:.3g} | "
            f"{iterations} | {work} | {s.wall_time_mean:.3g} | {s.failed}/{s.seeds} |"
        )
    return "\n".join(lines) + "\n"


def _last(rows: list[dict[str, float]], key: str) -> float:
    return next(row[key] for row in reversed(rows) if key in row)
