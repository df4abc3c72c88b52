"""Compare methods on one problem over seeds, with the same budget: ``sobirl compare``.

Every (method, seed) pair is one trial: the problem is built for the seed, the method runs for the same number
of outer iterations, and the exact ``phi`` and ``|grad phi|`` are recorded every ``evaluate_every`` iterations
(outside the method's timed work, so wall times compare the methods alone). Trials run in parallel worker
processes with one torch thread each. Each trial writes its metrics CSV; the comparison writes a markdown table
(final objective mean +/- standard error over seeds, :func:`~sobirl.experiments.aggregate.mean_and_se`, work
counters, wall time); :func:`~sobirl.experiments.figures.plot_comparison` draws the exact objective against the
iteration and against wall time with mean +/- s.e. bands. :func:`run_comparison` does all of it in a run directory.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sobirl.algorithms import METHODS, resolve_config, solve
from sobirl.experiments.aggregate import mean_and_se
from sobirl.problems import PROBLEMS
from sobirl.rundir import write_config
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
RESULTS_FILE = "results.md"
FIGURE_FILE = "objective.png"
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


def run_comparison(
    run_dir: Path,
    *,
    problem: str,
    problem_params: Mapping[str, Any],
    methods: Sequence[str],
    method_params: Mapping[str, Mapping[str, Any]],
    seeds: int,
    iterations: int,
    evaluate_every: int,
    workers: int,
    command: Sequence[str] | None = None,
    on_done: Callable[[TrialResult], None] | None = None,
) -> tuple[str, list[TrialResult]]:
    """The comparison behind ``sobirl compare`` in the new run directory ``run_dir`` (arguments checked by
    :func:`validate`): ``config.yaml``, every (method, seed) trial's metrics in ``trials/``, the markdown table in
    ``results.md`` and the figure ``objective.png``.

    Args:
        run_dir: a new, empty run directory.
        problem, problem_params: the problem of ``PROBLEMS`` and its parameters.
        methods, method_params: the methods, and the parameters of each (by method; none for a method left out).
        seeds: trials per method, seeds ``0 .. seeds - 1``.
        iterations: outer iterations of every trial.
        evaluate_every: iterations between exact evaluations.
        workers: parallel worker processes.
        command: the command line recorded in ``config.yaml``; defaults to ``sys.argv``.
        on_done: called with each finished trial (failed ones too).

    Returns:
        The markdown table and the trials' results (``error`` set for a failed trial).
    """
    # not at the top: figures.comparisons imports estimator_study, which imports this module
    from sobirl.experiments.figures import plot_comparison

    config = {
        "experiment": "compare",
        "problem": problem,
        "problem_params": dict(problem_params),
        "methods": list(methods),
        "method_params": {method: dict(params) for method, params in method_params.items()},
        "seeds": seeds,
        "iterations": iterations,
        "evaluate_every": evaluate_every,
        "workers": workers,
    }
    write_config(run_dir, config, command=command)
    specs = [
        TrialSpec(
            problem=problem,
            problem_params=dict(problem_params),
            method=method,
            method_params=dict(method_params.get(method, {})),
            seed=seed,
            iterations=iterations,
            evaluate_every=evaluate_every,
            metrics_path=trial_path(run_dir, method, seed),
        )
        for method in methods
        for seed in range(seeds)
    ]
    results = run_trials(specs, workers=workers, on_done=on_done)
    table = markdown_table(summarise(results), iterations)
    (run_dir / RESULTS_FILE).write_text(f"# {problem}: {', '.join(methods)} over {seeds} seeds\n\n{table}")
    plot_comparison(results, run_dir / FIGURE_FILE, title=f"{problem}, {seeds} seeds")
    return table, results


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
