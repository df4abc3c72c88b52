"""The run, sweep and compare directories that ``sobirl plot`` and ``sobirl report`` draw, read as runs (:class:`Run`).

A run directory holds ``config.yaml`` and ``metrics.csv``; a sweep directory (``sweep.yaml``, see
:mod:`sobirl.experiments.sweep`) stands for its trial directories whose ``metrics.csv`` holds a row, in grid order; a
``sobirl compare`` directory for its ``trials/<method>-seed<k>.csv``. All runs of one figure are of one experiment
(the ``experiment`` key of ``config.yaml``, one of :data:`EXPERIMENTS`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sobirl.experiments.compare import TRIALS_DIR, trial_path
from sobirl.experiments.sweep_spec import SWEEP_FILE, GridPoint, SweepSpec, plain_value, point_label
from sobirl.rundir import CONFIG_FILE, METRICS_FILE, read_csv_rows, read_metrics

EXPERIMENTS = ("rlhf", "synthetic", "compare")
"""The ``experiment`` values of ``config.yaml`` that can be plotted."""


@dataclass(frozen=True)
class Run:
    """One run directory, read for plotting.

    Attributes:
        run_dir: the run directory (a compare directory for each of its trials).
        experiment: one of :data:`EXPERIMENTS`.
        env: the environment id (rlhf); empty for synthetic runs, which all share one panel.
        method: the algorithm (rlhf) or method (synthetic): runs of one (env, method) are seeds of one line.
        seed: the run's seed.
        optimum: the known optimal objective ``f*`` of a synthetic run; None when unknown and for rlhf runs.
        rows: the rows of ``metrics.csv`` as numbers (NaN where absent).
        point: the run's grid point, its value of each config field it is grouped by (rlhf; ``()`` when none).
    """

    run_dir: Path
    experiment: str
    env: str
    method: str
    seed: int
    optimum: float | None
    rows: tuple[dict[str, float], ...]
    point: GridPoint = ()

    @property
    def label(self) -> str:
        """The run's line: ``method``, or ``method key=value, ...`` with a grid point; runs of one (env, label) are
        seeds of one line."""
        return f"{self.method} {point_label(self.point)}" if self.point else self.method


def read_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in ``run_dir/config.yaml``.

    Raises:
        ValueError: the file is not valid YAML or does not hold a mapping (one line, naming the file).
    """
    path = Path(run_dir) / CONFIG_FILE
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a YAML mapping, got {type(values).__name__}")
    return values


def read_sweep(sweep_dir: str | os.PathLike[str]) -> SweepSpec:
    """The grid in ``sweep_dir/sweep.yaml``.

    Raises:
        ValueError: ``sweep_dir`` is missing or holds no readable ``sweep.yaml`` (one line, naming the path).
    """
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        missing = "does not exist" if not Path(sweep_dir).exists() else f"is not a sweep directory (no {SWEEP_FILE})"
        raise ValueError(f"{sweep_dir} {missing}")
    try:
        return SweepSpec.from_dict(yaml.safe_load(path.read_text()) or {})
    except (ValueError, TypeError, AttributeError, yaml.YAMLError) as err:
        raise ValueError(f"{path} is not a readable sweep file: {' '.join(str(err).split())}") from err


def sweep_grid_keys(paths: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    """The grid keys of the sweep directories among ``paths`` (those holding ``sweep.yaml``), in order of first
    appearance; other paths add none.

    Raises:
        ValueError: a sweep directory's ``sweep.yaml`` is unreadable (:func:`read_sweep`).
    """
    keys: dict[str, None] = {}
    for path in map(Path, paths):
        if (path / SWEEP_FILE).is_file():
            keys.update(dict.fromkeys(read_sweep(path).grid or {}))
    return tuple(keys)


def expand_run_dirs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The run directories of ``paths``: a sweep directory (holding ``sweep.yaml``) becomes its trial directories
    whose ``metrics.csv`` holds at least one row, in grid order (:meth:`SweepSpec.trials`, so lines and colors
    follow the sweep's order of algorithms); any other path is kept. Repeats are dropped.

    Raises:
        ValueError: a path does not exist or is not a directory, or a sweep directory has an unreadable
            ``sweep.yaml`` or no trial with metrics.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise ValueError(f"{path} {'is not a directory' if path.exists() else 'does not exist'}")
        if not (path / SWEEP_FILE).is_file():
            found.append(path)
            continue
        trials = [path / trial.name for trial in read_sweep(path).trials() if _has_rows(path / trial.name)]
        if not trials:
            raise ValueError(f"sweep directory {path} has no trial with a row in its {METRICS_FILE} yet")
        found.extend(trials)
    unique: dict[Path, Path] = {}
    for run_dir in found:
        unique.setdefault(run_dir.resolve(), run_dir)
    return list(unique.values())


def _has_rows(run_dir: Path) -> bool:
    """Whether ``run_dir/metrics.csv`` exists and holds a row (a trial that has just started has none yet)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return False
    with open(path) as fh:
        return sum(1 for line in fh if line.strip()) > 1  # the header, then rows


def read_run(run_dir: str | os.PathLike[str], group_by: Sequence[str] = ()) -> Run:
    """Read one run directory; an rlhf run's ``point`` is its config's value of each ``group_by`` key (tuples as
    lists, as in ``sweep.yaml``).

    Raises:
        ValueError: ``run_dir`` lacks ``config.yaml`` or ``metrics.csv``, its experiment is not one of
            :data:`EXPERIMENTS`, its config lacks a key the figure needs (a ``group_by`` key of an rlhf run
            included), or ``metrics.csv`` has no row; the message names the directory.
    """
    run_dir = Path(run_dir)
    for name in (CONFIG_FILE, METRICS_FILE):
        if not (run_dir / name).is_file():
            hint = "" if name == METRICS_FILE else f", nor a sweep directory (no {SWEEP_FILE})"
            raise ValueError(f"{run_dir} is not a run directory (no {name}){hint}")
    config = read_config(run_dir)
    experiment = config.get("experiment")
    if experiment not in EXPERIMENTS:
        raise ValueError(
            f"{run_dir / CONFIG_FILE}: cannot plot experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}"
        )
    keys = ("env", "algo", "seed", *group_by) if experiment == "rlhf" else ("method", "seed")
    missing = [key for key in keys if key not in config]
    if missing:
        raise ValueError(f"{run_dir / CONFIG_FILE} lacks {', '.join(missing)}, needed to plot {experiment} runs")
    rows = tuple(read_metrics(run_dir))
    if not rows:
        raise ValueError(f"{run_dir / METRICS_FILE} has no rows yet")
    optimum = config.get("optimum") if experiment == "synthetic" else None
    return Run(
        run_dir=run_dir,
        experiment=experiment,
        env=str(config["env"]) if experiment == "rlhf" else "",
        method=str(config["algo" if experiment == "rlhf" else "method"]),
        seed=int(config["seed"]),
        optimum=None if optimum is None else float(optimum),
        rows=rows,
        point=tuple((key, plain_value(config[key])) for key in group_by) if experiment == "rlhf" else (),
    )


def is_compare_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a ``sobirl compare`` directory: a ``config.yaml`` of experiment ``compare``."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or (path / METRICS_FILE).is_file():
        return False
    try:
        return read_config(path).get("experiment") == "compare"
    except ValueError:
        return False  # read_run names the problem


def read_compare(compare_dir: str | os.PathLike[str]) -> list[Run]:
    """The trials of a ``sobirl compare`` directory as runs, in its order of methods then seeds: each
    ``trials/<method>-seed<k>.csv`` with its exact objective and ``|grad phi|`` (``exact_objective``,
    ``exact_grad_norm``, logged every ``evaluate_every`` iterations) as ``objective`` and ``grad_norm``. Trials
    without a file (not started) are left out.

    Raises:
        ValueError: the config lacks ``methods`` or ``seeds``, or no trial has a row yet.
    """
    compare_dir = Path(compare_dir)
    config = read_config(compare_dir)
    if not isinstance(config.get("methods"), list) or not isinstance(config.get("seeds"), int):
        raise ValueError(f"{compare_dir / CONFIG_FILE} lacks methods or seeds, needed to plot compare trials")
    runs = []
    for method in config["methods"]:
        for seed in range(config["seeds"]):
            path = trial_path(compare_dir, method, seed)
            if not path.is_file():
                continue
            rows = tuple(
                {
                    "iteration": row["iteration"],
                    "objective": row["exact_objective"],
                    "grad_norm": row["exact_grad_norm"],
                }
                for row in read_csv_rows(path)
            )
            if rows:
                runs.append(Run(compare_dir, "compare", "", str(method), seed, None, rows))
    if not runs:
        raise ValueError(f"{compare_dir} has no trial with a row in {TRIALS_DIR}/ yet")
    return runs


def load_runs(paths: Iterable[str | os.PathLike[str]], group_by: Sequence[str] | None = None) -> list[Run]:
    """Read the run directories of ``paths`` (sweep directories expanded, see :func:`expand_run_dirs`; a compare
    directory stands for its trials, :func:`read_compare`).

    Args:
        paths: run, sweep and compare directories.
        group_by: config keys that split an rlhf (env, algo) line into one line per grid point
            (:attr:`Run.point`); None: the grid keys of the sweep directories among ``paths``
            (:func:`sweep_grid_keys`).

    Raises:
        ValueError: no path is given, a path is not a run, sweep or compare directory (:func:`read_run`), or the runs
            are of different experiments.
    """
    paths = list(paths)
    keys = sweep_grid_keys(paths) if group_by is None else tuple(group_by)
    runs = []
    for run_dir in expand_run_dirs(paths):
        runs.extend(read_compare(run_dir) if is_compare_dir(run_dir) else [read_run(run_dir, keys)])
    if not runs:
        raise ValueError("no run directory given")
    kinds = {run.experiment for run in runs}
    if len(kinds) > 1:
        first = {kind: next(r.run_dir for r in runs if r.experiment == kind) for kind in sorted(kinds)}
        examples = ", ".join(f"{kind} in {path}" for kind, path in first.items())
        raise ValueError(f"cannot plot runs of different experiments together ({examples}); plot them separately")
    return runs
