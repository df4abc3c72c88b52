"""Paper-style figures of several run directories, behind ``sobirl plot``: mean over seeds with a shaded standard error.

Usage::

    sobirl plot RUN_DIR [RUN_DIR ...] [--output figures] [--name STEM]

Each RUN_DIR is a run directory (``config.yaml`` and ``metrics.csv``) or a sweep directory (``sweep.yaml``, see
:mod:`sobirl.experiments.sweep`), which stands for its trial directories whose ``metrics.csv`` holds a row, in grid
order. All runs must be of one experiment (the ``experiment`` key of ``config.yaml``):

- ``rlhf`` (``sobirl rlhf`` and ``sobirl sweep`` runs): ``STEM-return`` plots the evaluation return against agent
  steps, one subplot per environment and one line per algorithm (per algorithm and grid point when the runs are
  grouped by config fields: a sweep directory's grid keys, or ``group_by``; legend ``algo key=value``);
  ``STEM-accuracy`` the held-out preference accuracy likewise (algorithms without one, such as ``sac-true-reward``,
  are left out; no figure when no run has one). :func:`plot_performance_profile` (``sobirl report``'s
  ``rlhf-profile``) draws the same groups' final returns as rliable's performance profile.
- ``synthetic`` (``sobirl synthetic`` runs): ``STEM-convergence`` has two panels against the iteration, the objective
  ``f`` (or the gap ``f - f*`` on a log axis when every run has the same known optimum ``f*``) and ``|grad phi|``
  (log axis), one line per method.
- ``compare`` (a ``sobirl compare`` directory, which stands for its ``trials/<method>-seed<k>.csv``): the same
  ``STEM-convergence`` figure of the EXACT objective and ``|grad phi|``, at the iterations the comparison evaluated.

A line is the mean over the seeds of its group, and its band the standard error ``s.e. = std_{n-1} / sqrt(n)`` (no
band for a single seed), taken on the x values (agent steps, iterations) that every seed of the group has logged: a
seed that is still running shortens its group's line. The legend gives the seeds, ``algo (n seeds)``. Every figure
is written as PNG and PDF, into ``--output`` (created if missing).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sobirl.experiments.aggregate import PROFILE_REPS, performance_profile
from sobirl.experiments.compare import TRIALS_DIR, trial_path
from sobirl.experiments.sweep import SWEEP_FILE, GridPoint, SweepSpec, plain_value, point_label
from sobirl.rundir import CONFIG_FILE, METRICS_FILE, read_csv_rows, read_metrics

EXPERIMENTS = ("rlhf", "synthetic", "compare")
"""The ``experiment`` values of ``config.yaml`` that can be plotted."""
FORMATS = ("png", "pdf")
"""Every figure is written once per format."""
_PANELS_PER_ROW = 3
_YLABELS = {"eval_return": "evaluation return", "preference_accuracy": "held-out preference accuracy"}
_DPI = 150
PROFILE_THRESHOLDS = 101
"""Return thresholds of a performance profile per environment, evenly spaced over its runs' final returns."""


Curve = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(xs, mean, se)`` of one group of seeds (:func:`aggregate`)."""


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


def mean_and_se(values: Sequence[Sequence[float]] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean over the first axis of ``values`` (one row per seed) and its standard error
    ``s.e. = std_{n-1} / sqrt(n)`` (the ``n - 1`` denominator; zeros for a single row).

    Raises:
        ValueError: ``values`` has no row.
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    if n == 0:
        raise ValueError("mean_and_se needs at least one row of values")
    mean = values.mean(axis=0)
    se = values.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, se


def aggregate(runs: Sequence[Run], key: str, *, x: str = "agent_steps") -> Curve:
    """The curve of one group of seeds: ``(xs, mean, se)`` of the metric ``key`` against the column ``x``.

    ``xs`` are the sorted ``x`` values at which EVERY run has a (non-NaN) value of ``key``; at each, the mean over
    the runs and the standard error ``std_{n-1} / sqrt(n)`` (:func:`mean_and_se`). All three are empty when the runs
    share no such ``x`` (e.g. ``preference_accuracy`` of ``sac-true-reward``, NaN throughout).

    Raises:
        ValueError: ``runs`` is empty.
    """
    if not runs:
        raise ValueError("aggregate needs at least one run")
    curves = [
        {row[x]: row[key] for row in run.rows if not math.isnan(row.get(key, math.nan)) and not math.isnan(row[x])}
        for run in runs
    ]
    xs = sorted(set.intersection(*(set(curve) for curve in curves)))
    if not xs:
        empty = np.zeros(0)
        return empty, empty, empty
    mean, se = mean_and_se([[curve[v] for v in xs] for curve in curves])
    return np.asarray(xs, dtype=float), mean, se


def _curves(runs: Iterable[Run], key: str, x: str) -> dict[tuple[str, str], tuple[list[Run], Curve]]:
    """The runs by (env, label), in order of first appearance, with their curve of ``key`` against ``x``; groups
    whose seeds share no point are left out."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.env, run.label), []).append(run)
    curves = {name: (group, aggregate(group, key, x=x)) for name, group in groups.items()}
    return {name: (group, curve) for name, (group, curve) in curves.items() if len(curve[0])}


def _env_panels(n: int) -> tuple[Figure, np.ndarray]:
    """A figure of ``n`` panels, one per environment, at most ``_PANELS_PER_ROW`` a row (not registered with pyplot)."""
    ncols = min(n, _PANELS_PER_ROW)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.6 * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def _colors(runs: Iterable[Run]) -> dict[str, str]:
    """One color per line label (:attr:`Run.label`), in order of first appearance, so a line keeps its color in every
    panel and figure."""
    labels = list(dict.fromkeys(run.label for run in runs))
    return {label: f"C{i % 10}" for i, label in enumerate(labels)}


def _draw(ax: Axes, group: Sequence[Run], curve: Curve, color: str, *, offset: float = 0.0) -> None:
    """Draw a group's mean line (``offset`` subtracted, e.g. ``f*``), labelled ``label (n seeds)``
    (:attr:`Run.label`), and its +/- s.e. band when it has more than one seed."""
    xs, mean, se = curve
    mean = mean - offset
    seeds = f"{len(group)} seed{'s' if len(group) > 1 else ''}"
    ax.plot(xs, mean, color=color, label=f"{group[0].label} ({seeds})")
    if len(group) > 1:
        ax.fill_between(xs, mean - se, mean + se, color=color, alpha=0.2, linewidth=0)


def _save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``fig`` as ``stem.<format>`` for every format of :data:`FORMATS`."""
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in FORMATS]
    for path in paths:
        fig.savefig(path, dpi=_DPI)
    return paths


def _no_curve(runs: Sequence[Run], key: str) -> ValueError:
    """The error of a figure with nothing to draw."""
    return ValueError(f"no run has a {key} to plot ({', '.join(str(run.run_dir) for run in runs)})")


def rlhf_figure(runs: Sequence[Run], key: str) -> Figure:
    """The figure of the rlhf metric ``key`` (a ``metrics.csv`` column, e.g. ``eval_return``) against agent steps:
    one subplot per environment (in order of first appearance, three to a row), one line per algorithm labelled
    ``algo (n seeds)``: the mean over its seeds on their common steps, shaded +/- s.e. ``std_{n-1} / sqrt(n)`` when
    it has more than one seed (:func:`aggregate`). Algorithms whose seeds share no step with ``key`` logged are left
    out, and so are environments left without a line.

    Raises:
        ValueError: no algorithm has ``key`` at a step common to its seeds.
    """
    curves = _curves(runs, key, "agent_steps")
    if not curves:
        raise _no_curve(runs, key)
    colors = _colors(runs)
    envs = list(dict.fromkeys(env for env, _ in curves))
    fig, axes = _env_panels(len(envs))
    for ax, env in zip(axes, envs, strict=False):
        for (group_env, label), (group, curve) in curves.items():
            if group_env == env:
                _draw(ax, group, curve, colors[label])
        ax.set_title(env)
        ax.set_xlabel("agent steps")
        ax.set_ylabel(_YLABELS.get(key, key))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(envs) :]:
        ax.set_visible(False)
    return fig


def plot_rlhf_returns(runs: Sequence[Run], stem: str | os.PathLike[str]) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``: the evaluation return (deterministic policy) against agent steps, one
    subplot per environment, one line per algorithm: the mean over seeds on their common steps, shaded +/- s.e.
    ``std_{n-1} / sqrt(n)`` (:func:`aggregate`).

    Returns:
        The written paths.

    Raises:
        ValueError: no run has an evaluation return.
    """
    return _save(rlhf_figure(runs, "eval_return"), Path(stem))


def plot_rlhf_accuracy(runs: Sequence[Run], stem: str | os.PathLike[str]) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``: the reward net's held-out preference accuracy against agent steps, as
    :func:`plot_rlhf_returns` (algorithms whose accuracy is NaN throughout, such as ``sac-true-reward``, left out).

    Returns:
        The written paths.

    Raises:
        ValueError: no run has a preference accuracy.
    """
    return _save(rlhf_figure(runs, "preference_accuracy"), Path(stem))


def _final_returns(runs: Iterable[Run]) -> dict[tuple[str, str], list[Run]]:
    """The rlhf runs with a finite evaluation return in their last metrics row, by (env, label), in order of first
    appearance."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if math.isfinite(run.rows[-1].get("eval_return", math.nan)):
            groups.setdefault((run.env, run.label), []).append(run)
    return groups


def profile_thresholds(scores: Sequence[float], count: int = PROFILE_THRESHOLDS) -> np.ndarray:
    """``count`` evenly spaced return thresholds from 5% of the range below the lowest of ``scores`` to 5% above the
    highest (1 either side when they are all equal), so that every profile starts at 1 and ends at 0."""
    low, high = float(np.min(scores)), float(np.max(scores))
    pad = 0.05 * (high - low) or 1.0
    return np.linspace(low - pad, high + pad, count)


def performance_profile_figure(runs: Sequence[Run], *, seed: int = 0, reps: int = PROFILE_REPS) -> Figure:
    """The performance profile of rlhf runs' final evaluation returns (rliable's score distribution,
    :func:`~sobirl.experiments.aggregate.performance_profile`): one subplot per environment, one line per (algo,
    grid point) labelled ``label (n seeds)``: the fraction of its runs whose final return is strictly above each
    threshold (:func:`profile_thresholds` over the environment's final returns), shaded with its 95% stratified
    bootstrap band (``reps`` replicates from ``seed``; every group from the same seed). Runs whose last row has no
    evaluation return are left out.

    Raises:
        ValueError: no run has a final evaluation return.
    """
    groups = _final_returns(runs)
    if not groups:
        raise _no_curve(runs, "final eval_return")
    colors = _colors(runs)
    envs = list(dict.fromkeys(env for env, _ in groups))
    fig, axes = _env_panels(len(envs))
    for ax, env in zip(axes, envs, strict=False):
        scores = {label: [r.rows[-1]["eval_return"] for r in group] for (e, label), group in groups.items() if e == env}
        taus = profile_thresholds([v for values in scores.values() for v in values])
        for label, values in scores.items():
            profile = performance_profile(values, taus, reps=reps, seed=seed)
            seeds = f"{len(values)} seed{'s' if len(values) > 1 else ''}"
            ax.plot(taus, profile.point, color=colors[label], label=f"{label} ({seeds})")
            ax.fill_between(taus, profile.low, profile.high, color=colors[label], alpha=0.2, linewidth=0)
        ax.set_title(env)
        ax.set_xlabel("final evaluation return threshold")
        ax.set_ylabel("fraction of runs above")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(envs) :]:
        ax.set_visible(False)
    return fig


def plot_performance_profile(
    runs: Sequence[Run], stem: str | os.PathLike[str], *, seed: int = 0, reps: int = PROFILE_REPS
) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``: the performance profile of the runs' final evaluation returns with its
    95% stratified bootstrap bands (:func:`performance_profile_figure`; the same ``seed`` gives the same figure).

    Returns:
        The written paths.

    Raises:
        ValueError: no run has a final evaluation return.
    """
    return _save(performance_profile_figure(runs, seed=seed, reps=reps), Path(stem))


def tabular_figure(runs: Sequence[Run]) -> Figure:
    """The convergence figure of synthetic runs or compare trials: two panels against the iteration, one line per
    method labelled ``method (n seeds)`` with its +/- s.e. band (``std_{n-1} / sqrt(n)``, :func:`aggregate`): the
    objective ``f``, or the gap ``f - f*`` on a log axis when every run has the same known optimum ``f*``; and
    ``|grad phi|`` on a log axis. Non-positive values on a log axis (a gap at ``f*`` up to rounding, a band below
    zero) are masked.

    Raises:
        ValueError: no method has an objective or a gradient norm at an iteration common to its seeds.
    """
    optima = {run.optimum for run in runs}
    optimum = optima.pop() if len(optima) == 1 else None
    colors = _colors(runs)
    fig = Figure(figsize=(10, 3.8), layout="constrained")  # not registered with pyplot
    ax_f, ax_g = fig.subplots(1, 2)
    for ax, key in ((ax_f, "objective"), (ax_g, "grad_norm")):
        curves = _curves(runs, key, "iteration")
        if not curves:
            raise _no_curve(runs, key)
        offset = optimum if key == "objective" and optimum is not None else 0.0
        for (_, label), (group, curve) in curves.items():
            _draw(ax, group, curve, colors[label], offset=offset)
        ax.set_xlabel("iteration")
        ax.grid(True, which="major", alpha=0.3)
        ax.grid(True, which="minor", alpha=0.1)
        ax.legend(fontsize="small")
    if optimum is None:
        ax_f.set_ylabel("objective f")
    else:
        ax_f.set_yscale("log", nonpositive="mask")
        ax_f.set_ylabel(f"optimality gap f - f*   (f* = {optimum:g})")
    ax_g.set_yscale("log", nonpositive="mask")
    ax_g.set_ylabel("hyper-gradient norm |grad phi|")
    return fig


def plot_tabular(runs: Sequence[Run], stem: str | os.PathLike[str]) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``: the convergence figure of tabular runs (:func:`tabular_figure`), mean
    over seeds +/- s.e. ``std_{n-1} / sqrt(n)``.

    Returns:
        The written paths.

    Raises:
        ValueError: no method has an objective or a gradient norm at an iteration common to its seeds.
    """
    return _save(tabular_figure(runs), Path(stem))


def write_figures(
    run_dirs: Iterable[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    stem: str | None = None,
    group_by: Sequence[str] | None = None,
) -> list[Path]:
    """Write the figures of ``run_dirs`` (module docstring) into ``output_dir``, created if missing.

    Args:
        run_dirs: run directories and sweep directories, all of one experiment.
        output_dir: where the figures go.
        stem: the start of the file names, a single path component; None: the experiment (``rlhf``, ``synthetic``).
            rlhf runs give ``<stem>-return`` and ``<stem>-accuracy`` (when a run has an accuracy), synthetic runs and
            compare directories ``<stem>-convergence``, each as ``.png`` and ``.pdf``.
        group_by: config keys that split rlhf lines by grid point; None: the sweep directories' grid keys
            (:func:`load_runs`).

    Returns:
        The written paths.

    Raises:
        ValueError: bad input, named in one line: see :func:`load_runs`, or ``stem`` is not a file name.
    """
    if stem is not None and (not stem or stem in {".", ".."} or Path(stem).name != stem or "\\" in stem):
        raise ValueError(f"the figure name must be a non-empty file name without a directory, got {stem!r}")
    runs = load_runs(run_dirs, group_by)
    experiment = runs[0].experiment
    base = Path(output_dir) / (stem or experiment)
    base.parent.mkdir(parents=True, exist_ok=True)
    if experiment in ("synthetic", "compare"):
        return plot_tabular(runs, base.with_name(f"{base.name}-convergence"))
    paths = plot_rlhf_returns(runs, base.with_name(f"{base.name}-return"))
    if _curves(runs, "preference_accuracy", "agent_steps"):
        paths += plot_rlhf_accuracy(runs, base.with_name(f"{base.name}-accuracy"))
    return paths
