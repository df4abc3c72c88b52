"""Markdown tables of deep RLHF runs (``sobirl rlhf`` run directories), one row per (environment, algorithm) or, with
``group_by`` config fields (a sweep's grid keys), per (environment, algorithm, grid point).

:func:`summary_table`, per group, over its seeds: the final evaluation return (the deterministic policy's mean true
return at the last metrics row) as mean +/- standard error, the mean of each run's last ``window`` evaluations
likewise (less noisy than one evaluation of a few episodes), the per-seed final returns, the final held-out
preference accuracy (mean), and the mean wall time and agent steps per second. The standard error is
``std / sqrt(n)`` with the ``n - 1`` denominator, 0 for a single seed
(:func:`~sobirl.experiments.aggregate.mean_and_se`). A run that stopped before its ``total_steps`` is shown with its
steps.

:func:`aggregate_table`, per group: the interquartile mean over seeds of the same two returns with its 95% stratified
bootstrap percentile interval (:mod:`sobirl.experiments.aggregate`, rliable's method), seeded.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sobirl.experiments.aggregate import CONFIDENCE, INTERVAL_REPS, interval_estimate, mean_and_se
from sobirl.experiments.sweep_spec import GridPoint, grid_label, plain_value
from sobirl.rlhf.config import RLHFConfig
from sobirl.rundir import CONFIG_FILE, METRICS_FILE, read_metrics
from sobirl.validation import check_int

Group = tuple[str, str, GridPoint]
"""``(env, algo, grid point)`` of a row."""


@dataclass(frozen=True)
class RunResult:
    """What the table needs of one run directory."""

    run_dir: Path
    config: RLHFConfig
    steps: int
    final_return: float
    window_return: float
    accuracy: float
    wall_time: float

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str], window: int) -> RunResult:
        """Read ``run_dir``'s config and metrics.

        Raises:
            FileNotFoundError: ``run_dir`` lacks ``config.yaml`` or ``metrics.csv``.
            ValueError: ``metrics.csv`` has no rows.
        """
        run_dir = Path(run_dir)
        for name in (CONFIG_FILE, METRICS_FILE):
            if not (run_dir / name).is_file():
                raise FileNotFoundError(f"{run_dir} is not an rlhf run directory (no {name})")
        rows = read_metrics(run_dir)
        if not rows:
            raise ValueError(f"{run_dir / METRICS_FILE} has no rows yet")
        last = rows[-1]
        return cls(
            run_dir=run_dir,
            config=RLHFConfig.from_yaml(run_dir / CONFIG_FILE),
            steps=int(last["agent_steps"]),
            final_return=float(last["eval_return"]),
            window_return=statistics.fmean(r["eval_return"] for r in rows[-window:]),
            accuracy=float(last["preference_accuracy"]),
            wall_time=float(last["wall_time"]),
        )


def _mean_se(values: list[float]) -> str:
    """``mean +/- s.e.`` with the ``n - 1`` standard deviation (s.e. 0 for one value; ``aggregate.mean_and_se``)."""
    mean, se = mean_and_se(values)
    return f"{mean:.1f} +/- {se:.1f}"


def group_runs(
    run_dirs: Sequence[str | os.PathLike[str]], *, window: int, group_by: Sequence[str] = ()
) -> dict[Group, list[RunResult]]:
    """The runs of ``run_dirs`` by (env, algo, grid point), groups in order of first appearance, seeds sorted; the
    grid point is the run's value of each ``group_by`` config key, ``((key, value), ...)`` (tuples as lists; None
    where the run's config does not set the key).

    Raises:
        ValueError: no run directory, ``window < 1``, a ``group_by`` key that is env, algo or seed or in no run's
            config (``RLHFConfig.to_dict``; naming the keys that are), or a run directory that cannot be read
            (:meth:`RunResult.read`).
    """
    check_int("window", window, low=1)
    if not run_dirs:
        raise ValueError("run_dirs must name at least one run directory")
    if any(key in ("env", "algo", "seed") for key in group_by):
        raise ValueError(f"group_by must not hold env, algo or seed (every table groups by them), got {group_by}")
    groups: dict[Group, list[RunResult]] = {}
    seen: dict[str, None] = {}  # ordered
    for run_dir in run_dirs:
        result = RunResult.read(run_dir, window)
        c, values = result.config, result.config.to_dict()
        seen.update(dict.fromkeys(values))
        point = tuple((key, plain_value(values.get(key))) for key in group_by)
        groups.setdefault((c.env, c.algo, point), []).append(result)
    unknown = [str(key) for key in group_by if key not in seen]
    if unknown:
        raise ValueError(f"group_by keys {', '.join(unknown)} are set in no run's config; set: {', '.join(seen)}")
    for results in groups.values():
        results.sort(key=lambda r: r.config.seed)
    return groups


def _key_cells(group_by: Sequence[str], point: GridPoint) -> str:
    """The grid point's cells (``grid_label`` of each value), each followed by ``" | "``; empty without keys."""
    return "".join(f"{grid_label(value)} | " for _, value in point) if group_by else ""


def summary_table(run_dirs: Sequence[str | os.PathLike[str]], *, window: int = 5, group_by: Sequence[str] = ()) -> str:
    """The markdown table (module docstring) of ``run_dirs``, groups in order of first appearance, seeds sorted.

    Args:
        run_dirs: ``sobirl rlhf`` run directories (at least one).
        window: evaluations averaged per run for the windowed column (``>= 1``).
        group_by: config keys whose values split the (env, algo) groups (a sweep's grid keys), one column each
            after ``algo``; none by default.

    Raises:
        ValueError: see :func:`group_runs`.
    """
    groups = group_runs(run_dirs, window=window, group_by=group_by)
    keys = "".join(f" {key} |" for key in group_by)
    lines = [
        f"| env | algo |{keys} seeds | agent steps | final eval return | last {window} evals | final return per seed "
        "| held-out accuracy | wall time (s) | steps/s |",
        "|---|---|" + "---|" * len(group_by) + "---|---|---|---|---|---|---|---|",
    ]
    for (env, algo, point), results in groups.items():
        steps = sorted({r.steps for r in results})
        totals = sorted({r.config.total_steps for r in results})
        shown = ", ".join(str(s) for s in steps) + ("" if steps == totals else f" of {', '.join(map(str, totals))}")
        per_seed = ", ".join(f"{r.config.seed}: {r.final_return:.0f}" for r in results)
        accuracy = [r.accuracy for r in results if not math.isnan(r.accuracy)]
        wall = statistics.fmean(r.wall_time for r in results)
        speed = statistics.fmean(r.steps / r.wall_time for r in results)
        lines.append(
            f"| {env} | {algo} | {_key_cells(group_by, point)}{len(results)} | {shown} "
            f"| {_mean_se([r.final_return for r in results])} "
            f"| {_mean_se([r.window_return for r in results])} | {per_seed} "
            f"| {f'{statistics.fmean(accuracy):.2f}' if accuracy else 'n/a'} | {wall:.0f} | {speed:.1f} |"
        )
    return "\n".join(lines)


def aggregate_table(
    run_dirs: Sequence[str | os.PathLike[str]],
    *,
    window: int = 5,
    group_by: Sequence[str] = (),
    seed: int = 0,
    reps: int = INTERVAL_REPS,
) -> str:
    """The markdown table of the interquartile mean over seeds of each group's final evaluation return and of its
    runs' mean of the last ``window`` evaluations, each with its 95% stratified bootstrap percentile interval
    (:func:`~sobirl.experiments.aggregate.interval_estimate`), as ``IQM [low, high]``; groups as
    :func:`summary_table`'s. A group with a NaN return (a run without an evaluation yet) shows ``n/a`` there.

    Args:
        run_dirs: ``sobirl rlhf`` run directories (at least one).
        window: evaluations averaged per run for the windowed column (``>= 1``).
        group_by: config keys that split the groups (:func:`summary_table`).
        seed: seed of every group's bootstrap (``>= 0``): the same runs and seed give the same table.
        reps: bootstrap replicates per interval (``>= 1``; rliable's 50,000 by default).

    Raises:
        ValueError: see :func:`group_runs`; ``seed < 0`` or ``reps < 1``.
    """
    check_int("seed", seed)
    check_int("reps", reps, low=1)
    groups = group_runs(run_dirs, window=window, group_by=group_by)
    keys = "".join(f" {key} |" for key in group_by)
    level = f"{100 * CONFIDENCE:g}%"
    lines = [
        f"| env | algo |{keys} seeds | final eval return: IQM [{level} CI] | last {window} evals: IQM [{level} CI] |",
        "|---|---|" + "---|" * len(group_by) + "---|---|---|",
    ]
    for (env, algo, point), results in groups.items():
        cells = []
        for values in ([r.final_return for r in results], [r.window_return for r in results]):
            if not all(math.isfinite(v) for v in values):
                cells.append("n/a")
                continue
            estimate = interval_estimate(values, reps=reps, seed=seed)
            cells.append(f"{estimate.point:.1f} [{estimate.low:.1f}, {estimate.high:.1f}]")
        lines.append(f"| {env} | {algo} | {_key_cells(group_by, point)}{len(results)} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
