"""The one style of sobirl's figures: bare constrained-layout figures, a mean line with its shaded band, light grids, a
small legend, one colour per line across panels, and one resolution.

Figures are drawn with matplotlib's object API: a :class:`~matplotlib.figure.Figure` built directly is not registered
with pyplot, so no backend is switched, no global state is touched and a figure is freed with its last reference.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

DPI = 150
"""Resolution of every written raster figure (PNG)."""
BAND_ALPHA = 0.2
"""Opacity of a shaded band (+/- s.e., a bootstrap interval), drawn in its line's colour."""
GRID_ALPHA = 0.3
"""Opacity of the major grid lines."""
MINOR_GRID_ALPHA = 0.1
"""Opacity of the minor grid lines (drawn on logarithmic axes)."""
LEGEND_FONTSIZE = "small"
"""Font size of every legend."""


def new_figure(width: float, height: float) -> Figure:
    """A ``width`` x ``height`` inch figure with constrained layout, not registered with pyplot."""
    return Figure(figsize=(width, height), layout="constrained")


def line_colors(labels: Iterable[str]) -> dict[str, str]:
    """One colour (``C0`` to ``C9``, cycling) per distinct label, in order of first appearance, so a line keeps its
    colour in every panel and figure."""
    return {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(labels))}


def draw_band(ax: Axes, xs: Sequence[float] | np.ndarray, low: np.ndarray, high: np.ndarray, color: str) -> None:
    """Shade between ``low`` and ``high`` in ``color`` (:data:`BAND_ALPHA`, no edge)."""
    ax.fill_between(xs, low, high, color=color, alpha=BAND_ALPHA, linewidth=0)


def draw_mean(
    ax: Axes,
    xs: Sequence[float] | np.ndarray,
    mean: Sequence[float] | np.ndarray,
    se: Sequence[float] | np.ndarray,
    *,
    label: str,
    color: str | None = None,
    band: bool = True,
) -> str:
    """Draw the mean line labelled ``label`` and, with ``band``, its +/- s.e. band in the line's colour.

    Returns:
        The line's colour (``color``, or the next of the axes' cycle when None).
    """
    mean, se = np.asarray(mean, dtype=float), np.asarray(se, dtype=float)
    (line,) = ax.plot(xs, mean, color=color, label=label)
    if band:
        draw_band(ax, xs, mean - se, mean + se, line.get_color())
    return line.get_color()


def style_axes(
    ax: Axes, *, xlabel: str, ylabel: str | None = None, title: str | None = None, legend: bool = False
) -> None:
    """Label the axes (``ylabel`` and ``title`` when given), draw the grid (major :data:`GRID_ALPHA`, minor
    :data:`MINOR_GRID_ALPHA`) and, with ``legend``, a legend of the labelled lines (none when no line is labelled)."""
    ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=GRID_ALPHA)
    ax.grid(True, which="minor", alpha=MINOR_GRID_ALPHA)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=LEGEND_FONTSIZE)


def save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path`` (the format from its suffix) at :data:`DPI`; returns the path."""
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path
