"""One run of a bilevel method on the paper's synthetic RandMDP problem, the experiment behind ``sobirl synthetic``
(docs/math.md, section 4): ``config.yaml``, ``metrics.csv`` and ``tensorboard/`` as the method runs, then ``plot.png``
and ``summary.yaml`` with the exact objective and hyper-gradient at the method's final point."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sobirl.algorithms import MethodConfig, solve
from sobirl.experiments.figures import plot_convergence
from sobirl.rundir import CONFIG_FILE, METRICS_FILE, TENSORBOARD_DIR, MetricsLogger, write_config
from sobirl.tabular import BilevelProblem, hypergradient, hyperobjective

PLOT_FILE = "plot.png"
SUMMARY_FILE = "summary.yaml"


@dataclass(frozen=True)
class SyntheticResult:
    """A finished synthetic run.

    Attributes:
        paths: what the run directory holds, by name: ``run_dir``, ``config``, ``metrics``, ``tensorboard``, ``plot``,
            ``summary``.
        objective: the exact objective ``f`` at the final point.
        optimum: RandMDP's global minimum of ``f``.
        grad_norm: the exact ``|grad phi|`` at the final point.
        wall_time: seconds the method ran, logging included.
    """

    paths: dict[str, Path]
    objective: float
    optimum: float
    grad_norm: float
    wall_time: float


def run_synthetic(
    prob: BilevelProblem,
    config: MethodConfig,
    run_dir: Path,
    *,
    problem: Mapping[str, Any],
    seed: int,
    method: str,
    iterations: int,
    progress: bool = True,
    command: Sequence[str] | None = None,
) -> SyntheticResult:
    """Run ``method`` with ``config`` on ``prob`` (RandMDP) for ``iterations`` from ``prob.x0``, in ``run_dir``.

    Args:
        prob: the problem, from :func:`sobirl.problems.random_mdp`.
        config: the method's resolved config.
        run_dir: a new, empty run directory.
        problem: the problem's parameters ``S``, ``A``, ``n``, ``gamma`` and ``tau``, recorded in ``config.yaml``.
        seed: the problem's seed, recorded.
        method: the method's name in ``METHODS``.
        iterations: outer iterations.
        progress: show the method's progress bar.
        command: the command line recorded in ``config.yaml``; defaults to ``sys.argv``.

    Raises:
        DivergenceError: the method failed numerically; ``metrics.csv`` holds the rows up to the failure.
    """
    paths = {
        "run_dir": run_dir,
        "config": run_dir / CONFIG_FILE,
        "metrics": run_dir / METRICS_FILE,
        "tensorboard": run_dir / TENSORBOARD_DIR,
        "plot": run_dir / PLOT_FILE,
        "summary": run_dir / SUMMARY_FILE,
    }
    optimum = problem["S"] / (2 * problem["A"])  # global minimum of RandMDP's f, at x = 0 (see random_mdp)
    resolved = {
        "experiment": "synthetic",
        "problem": {"name": prob.name, **{key: problem[key] for key in ("S", "A", "n", "gamma", "tau")}},
        "seed": seed,
        "method": method,
        "method_config": config.to_dict(),
        "iterations": iterations,
        "optimum": optimum,
        "outputs": {key: str(path) for key, path in paths.items()},
    }
    write_config(run_dir, resolved, command=command)

    start = time.perf_counter()
    with MetricsLogger(run_dir) as logger:
        res = solve(prob, prob.x0, method, iterations, progress=progress, callback=logger.log, **config.to_dict())
    wall_time = time.perf_counter() - start

    # The logged objective and grad_norm are the method's own estimates; the summary holds the exact values.
    objective = hyperobjective(prob, res.x).item()
    grad_norm = hypergradient(prob, res.x).norm().item()
    plot_convergence(res.history, paths["plot"], title=f"{method} on {prob.name}", optimum=optimum)
    summary = {
        "iterations": len(res.history),
        "objective": objective,
        "optimality_gap": objective - optimum,
        "grad_norm": grad_norm,
        "wall_time_s": wall_time,
        "method_time_s": res.history.rows[-1]["wall_time"],
    }
    with open(paths["summary"], "x") as fh:
        yaml.safe_dump(summary, fh, sort_keys=False)
    return SyntheticResult(paths, objective, optimum, grad_norm, wall_time)
