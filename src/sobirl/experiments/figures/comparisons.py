"""The figures that set methods side by side: ``sobirl compare``'s exact objective over seeds (``objective.png``) and
``sobirl estimators``' bias, spread and cosine against the trajectories per estimate (``bias.png``, ``std.png``,
``cosine.png``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sobirl.experiments.aggregate import mean_and_se
from sobirl.experiments.estimator_study import BIAS_TARGET, PLOT_FILES
from sobirl.experiments.figures.style import draw_mean, new_figure, save, style_axes

if TYPE_CHECKING:
    from sobirl.experiments.compare import TrialResult
    from sobirl.experiments.estimator_study import StudyRow


def plot_comparison(results: Sequence[TrialResult], path: Path, *, title: str) -> Path:
    """Save a PNG of the exact objective against the iteration and against wall time: one line per method, the mean
    over its seeds with its +/- s.e. band (``std_{n-1} / sqrt(n)``, :func:`~sobirl.experiments.aggregate.mean_and_se`;
    no band for one seed), at the iterations the trials evaluated. Failed trials are left out.

    Returns:
        The path of the PNG.
    """
    fig = new_figure(11, 4.2)
    ax_it, ax_t = fig.subplots(1, 2)
    by_method: dict[str, list[TrialResult]] = {}
    for result in results:
        if result.error is None:
            by_method.setdefault(result.spec.method, []).append(result)
    for method, trials in by_method.items():
        evaluated = [[row for row in t.rows if "exact_objective" in row] for t in trials]
        mean, se = mean_and_se([[row["exact_objective"] for row in rows] for rows in evaluated])
        times = np.mean([[row["wall_time"] for row in rows] for rows in evaluated], axis=0)
        iters = [row["iteration"] for row in evaluated[0]]
        color = None
        for ax, xs in ((ax_it, iters), (ax_t, times)):
            color = draw_mean(ax, xs, mean, se, label=method, color=color, band=len(trials) > 1)
    style_axes(ax_it, xlabel="iteration", ylabel="objective phi(x)", legend=True)
    style_axes(ax_t, xlabel="wall time (s)", ylabel="objective phi(x)")
    fig.suptitle(title)
    return save(fig, path)


def plot_study(rows: Sequence[StudyRow], run_dir: Path, *, title: str) -> dict[str, Path]:
    """Write the figures :data:`~sobirl.experiments.estimator_study.PLOT_FILES` to ``run_dir``, one line per estimator
    against the trajectories.

    ``bias.png``: relative bias (solid), its noise floor (dashed, same colour) and
    :data:`~sobirl.experiments.estimator_study.BIAS_TARGET` (dotted), log-log; ``std.png``: relative std, log-log;
    ``cosine.png``: mean cosine similarity with standard-error bars, log x. Zero values (e.g. an estimator that is
    exactly zero) are left out of the log axes.

    Returns:
        The written paths, by the keys of :data:`~sobirl.experiments.estimator_study.PLOT_FILES`.
    """
    by_estimator: dict[str, list[StudyRow]] = {}
    for row in rows:
        by_estimator.setdefault(row.estimator, []).append(row)
    paths = {}
    for key, file in PLOT_FILES.items():
        fig = new_figure(6.4, 4.4)
        ax = fig.subplots()
        for estimator, lines in by_estimator.items():
            n = [r.trajectories for r in lines]
            if key == "bias":
                (line,) = ax.plot(n, [r.bias for r in lines], marker="o", label=estimator)
                ax.plot(n, [r.bias_se for r in lines], linestyle="--", color=line.get_color(), alpha=0.7)
            elif key == "std":
                ax.plot(n, [r.std for r in lines], marker="o", label=estimator)
            else:
                se = [r.cosine_se for r in lines]
                ax.errorbar(n, [r.cosine for r in lines], yerr=se, marker="o", capsize=3, label=estimator)
        if key == "bias":
            ax.axhline(BIAS_TARGET, color="grey", linestyle=":", label=f"{BIAS_TARGET:.0%}")
        ax.set_xscale("log")
        if key == "cosine":
            ylabel = "mean cosine similarity to grad phi"
        else:
            ax.set_yscale("log", nonpositive="mask")
            ylabel = "relative bias (dashed: noise floor)" if key == "bias" else "relative standard deviation"
        style_axes(ax, xlabel="trajectories per estimate", ylabel=ylabel, title=title, legend=True)
        paths[key] = save(fig, Path(run_dir) / file)
    return paths
