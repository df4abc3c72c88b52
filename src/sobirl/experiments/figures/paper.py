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
is written as PNG and PDF, into ``--output`` (created if missing). The directories are read by
:mod:`sobirl.experiments.figures.runs`; lines, bands and grids are drawn in :mod:`sobirl.experiments.figures.style`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sobirl.experiments.aggregate import PROFILE_REPS, mean_and_se, performance_profile
from sobirl.experiments.figures.runs import Run, load_runs
from sobirl.experiments.figures.style import draw_band, draw_mean, line_colors, new_figure, save, style_axes

FORMATS = ("png", "pdf")
"""Every figure is written once per format."""
_PANELS_PER_ROW = 3
_YLABELS = {"eval_return": "evaluation return", "preference_accuracy": "held-out preference accuracy"}
PROFILE_THRESHOLDS = 101
"""Return thresholds of a performance profile per environment, evenly spaced over its runs' final returns."""


Curve = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(xs, mean, se)`` of one group of seeds (:func:`aggregate`)."""


def aggregate(runs: Sequence[Run], key: str, *, x: str = "agent_steps") -> Curve:
    """The curve of one group of seeds: ``(xs, mean, se)`` of the metric ``key`` against the column ``x``.

    ``xs`` are the sorted ``x`` values at which EVERY run has a (non-NaN) value of ``key``; at each, the mean over
    the runs and the standard error ``std_{n-1} / sqrt(n)``
    (:func:`~sobirl.experiments.aggregate.mean_and_se`). All three are empty when the runs
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
    """A figure of ``n`` panels, one per environment, at most ``_PANELS_PER_ROW`` a row."""
    ncols = min(n, _PANELS_PER_ROW)
    nrows = math.ceil(n / ncols)
    fig = new_figure(4.6 * ncols, 3.6 * nrows)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def _seeds_label(label: str, seeds: int) -> str:
    """A line's legend: ``label (n seeds)``."""
    return f"{label} ({seeds} seed{'s' if seeds > 1 else ''})"


def _draw(ax: Axes, group: Sequence[Run], curve: Curve, color: str, *, offset: float = 0.0) -> None:
    """Draw a group's mean line (``offset`` subtracted, e.g. ``f*``), labelled ``label (n seeds)``
    (:attr:`Run.label`), and its +/- s.e. band when it has more than one seed."""
    xs, mean, se = curve
    label = _seeds_label(group[0].label, len(group))
    draw_mean(ax, xs, mean - offset, se, label=label, color=color, band=len(group) > 1)


def _save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``fig`` as ``stem.<format>`` for every format of :data:`FORMATS`."""
    return [save(fig, stem.with_name(f"{stem.name}.{fmt}")) for fmt in FORMATS]


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
    colors = line_colors(run.label for run in runs)
    envs = list(dict.fromkeys(env for env, _ in curves))
    fig, axes = _env_panels(len(envs))
    for ax, env in zip(axes, envs, strict=False):
        for (group_env, label), (group, curve) in curves.items():
            if group_env == env:
                _draw(ax, group, curve, colors[label])
        style_axes(ax, xlabel="agent steps", ylabel=_YLABELS.get(key, key), title=env, legend=True)
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
    colors = line_colors(run.label for run in runs)
    envs = list(dict.fromkeys(env for env, _ in groups))
    fig, axes = _env_panels(len(envs))
    for ax, env in zip(axes, envs, strict=False):
        scores = {label: [r.rows[-1]["eval_return"] for r in group] for (e, label), group in groups.items() if e == env}
        taus = profile_thresholds([v for values in scores.values() for v in values])
        for label, values in scores.items():
            profile = performance_profile(values, taus, reps=reps, seed=seed)
            ax.plot(taus, profile.point, color=colors[label], label=_seeds_label(label, len(values)))
            draw_band(ax, taus, profile.low, profile.high, colors[label])
        ax.set_ylim(-0.02, 1.02)
        style_axes(
            ax, xlabel="final evaluation return threshold", ylabel="fraction of runs above", title=env, legend=True
        )
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
    colors = line_colors(run.label for run in runs)
    fig = new_figure(10, 3.8)
    ax_f, ax_g = fig.subplots(1, 2)
    if optimum is None:
        f_label = "objective f"
    else:
        ax_f.set_yscale("log", nonpositive="mask")
        f_label = f"optimality gap f - f*   (f* = {optimum:g})"
    ax_g.set_yscale("log", nonpositive="mask")
    for ax, key, ylabel in ((ax_f, "objective", f_label), (ax_g, "grad_norm", "hyper-gradient norm |grad phi|")):
        curves = _curves(runs, key, "iteration")
        if not curves:
            raise _no_curve(runs, key)
        offset = optimum if key == "objective" and optimum is not None else 0.0
        for (_, label), (group, curve) in curves.items():
            _draw(ax, group, curve, colors[label], offset=offset)
        style_axes(ax, xlabel="iteration", ylabel=ylabel, legend=True)
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
