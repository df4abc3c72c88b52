"""A markdown table of deep RLHF runs (``sobirl rlhf`` run directories), one row per (environment, algorithm).

Per group, over its seeds: the final evaluation return (the deterministic policy's mean true return at the last
metrics row) as mean +/- standard error, the mean of each run's last ``window`` evaluations likewise (less noisy than
one evaluation of a few episodes), the per-seed final returns, the final held-out preference accuracy (mean), and
the mean wall time and agent steps per second. The standard error is ``std / sqrt(n)`` with the ``n - 1``
denominator (0 for a single seed). A run that stopped before its ``total_steps`` is shown with its steps.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from sobirl.experiments.rundir import CONFIG_FILE, METRICS_FILE
from sobirl.rlhf.trainer import RLHFConfig, read_metrics
from sobirl.validation import check_int


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
    """``mean +/- s.e.`` with the ``n - 1`` standard deviation (s.e. 0 for one value)."""
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} +/- {se:.1f}"


def summary_table(run_dirs: list[str | os.PathLike[str]], *, window: int = 5) -> str:
    """The markdown table (module docstring) of ``run_dirs``, groups in order of first appearance, seeds sorted.

    Args:
        run_dirs: ``sobirl rlhf`` run directories (at least one).
        window: evaluations averaged per run for the windowed column (``>= 1``).
    """
    check_int("window", window, low=1)
    if not run_dirs:
        raise ValueError("run_dirs must name at least one run directory")
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for run_dir in run_dirs:
        result = RunResult.read(run_dir, window)
        groups.setdefault((result.config.env, result.config.algo), []).append(result)
    lines = [
        f"| env | algo | seeds | agent steps | final eval return | last {window} evals | final return per seed "
        "| held-out accuracy | wall time (s) | steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (env, algo), results in groups.items():
        results.sort(key=lambda r: r.config.seed)
        steps = sorted({r.steps for r in results})
        totals = sorted({r.config.total_steps for r in results})
        shown = ", ".join(str(s) for s in steps) + ("" if steps == totals else f" of {', '.join(map(str, totals))}")
        per_seed = ", ".join(f"{r.config.seed}: {r.final_return:.0f}" for r in results)
        accuracy = [r.accuracy for r in results if not math.isnan(r.accuracy)]
        wall = statistics.fmean(r.wall_time for r in results)
        speed = statistics.fmean(r.steps / r.wall_time for r in results)
        lines.append(
            f"| {env} | {algo} | {len(results)} | {shown} | {_mean_se([r.final_return for r in results])} "
            f"| {_mean_se([r.window_return for r in results])} | {per_seed} "
            f"| {f'{statistics.fmean(accuracy):.2f}' if accuracy else 'n/a'} | {wall:.0f} | {speed:.1f} |"
        )
    return "\n".join(lines)
