"""Plots of a run's history, drawn with matplotlib's object API so no global pyplot state is touched."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from matplotlib.figure import Figure


def plot_convergence(
    history: Iterable[Mapping[str, float]],
    path: str | Path,
    *,
    title: str,
    optimum: float | None = None,
) -> Path:
    """Save a PNG with two panels against the iteration: the objective ``f`` and ``|grad phi|`` (log scale).

    Args:
        history: the run's rows (a :class:`~sobirl.algorithms.History` or a list of dicts), each with
            ``iteration``, ``objective`` and ``grad_norm``; rows lacking a column are skipped in its panel.
        path: where to write the PNG.
        title: the figure title.
        optimum: the known optimal value ``f*``; if given the left panel shows the gap ``f - f*`` on a log
            axis (points where the gap is not positive, i.e. at ``f*`` up to rounding, are left out), else
            ``f`` on a linear axis.

    Returns:
        The path of the PNG.

    Raises:
        ValueError: no row holds ``objective`` or ``grad_norm``.
    """
    rows = list(history)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for key in ("objective", "grad_norm"):
        recorded = [row for row in rows if key in row]
        if not recorded:
            raise ValueError(f"cannot plot {key!r}: no row of the history holds it")
        series[key] = ([row["iteration"] for row in recorded], [row[key] for row in recorded])

    # A bare Figure is not registered with pyplot, so it needs no backend switch and is freed with its last
    # reference instead of waiting for plt.close.
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_f, ax_g = fig.subplots(1, 2)
    iters, values = series["objective"]
    if optimum is None:
        ax_f.plot(iters, values)
        ax_f.set_ylabel("f")
        ax_f.set_title("objective f")
    else:
        ax_f.plot(iters, [v - optimum for v in values])
        ax_f.set_yscale("log", nonpositive="mask")
        ax_f.set_ylabel(f"f - f*   (f* = {optimum:g})")
        ax_f.set_title("optimality gap f - f*")
    iters, values = series["grad_norm"]
    ax_g.plot(iters, values, color="tab:red")
    ax_g.set_yscale("log", nonpositive="mask")
    ax_g.set_ylabel("|grad phi|")
    ax_g.set_title("hyper-gradient norm |grad phi|")
    for ax in (ax_f, ax_g):
        ax.set_xlabel("iteration")
        ax.grid(True, which="major", alpha=0.4)
        ax.grid(True, which="minor", alpha=0.12)
    fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
