"""Heat maps of tables, shared by the figures of the application problems (apprenticeship learning, contract design,
navigation): a value per grid cell or per ``(state, action)``, drawn with matplotlib's object API (no pyplot, so
any backend and no global state) and saved as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def heatmap(
    ax: Any,
    values: torch.Tensor,
    *,
    title: str,
    mask: torch.Tensor | None = None,
    cmap: str = "viridis",
    symmetric: bool = False,
    xlabels: Sequence[str] | None = None,
    ylabels: Sequence[str] | None = None,
    annotate: bool = False,
) -> None:
    """Draw the 2-D table ``values`` on ``ax`` with a colour bar.

    Args:
        ax: a matplotlib Axes.
        values: a ``(rows, cols)`` tensor.
        title: the panel's title.
        mask: bool ``(rows, cols)``; masked cells (obstacles, say) are drawn grey and left out of the colour scale.
        cmap: a matplotlib colour map.
        symmetric: a colour scale symmetric about 0 (for signed values such as a shaping bonus).
        xlabels, ylabels: tick labels of the columns and rows; none when None.
        annotate: write each value in its cell.
    """
    import matplotlib
    import numpy as np

    data = values.detach().to(torch.float64).cpu().numpy()
    hidden = np.zeros(data.shape, dtype=bool) if mask is None else mask.cpu().numpy()
    shown = np.ma.masked_array(data, mask=hidden)
    vmin = vmax = None
    if symmetric:
        vmax = float(np.abs(data[~hidden]).max()) if (~hidden).any() else 1.0
        vmax, vmin = max(vmax, 1e-12), -max(vmax, 1e-12)
    colours = matplotlib.colormaps[cmap].with_extremes(bad="0.55")
    image = ax.imshow(shown, cmap=colours, vmin=vmin, vmax=vmax)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(data.shape[1]), labels=list(xlabels) if xlabels is not None else None)
    ax.set_yticks(range(data.shape[0]), labels=list(ylabels) if ylabels is not None else None)
    if xlabels is None:
        ax.set_xticks([])
    if ylabels is None:
        ax.set_yticks([])
    if annotate:
        for (i, j), value in np.ndenumerate(data):
            if not hidden[i, j]:
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color="w")


def mark_cells(ax: Any, cells: torch.Tensor, side: int, *, marker: str, label: str, color: str = "w") -> None:
    """Mark the grid cells ``cells`` (bool ``(side * side,)``, state ``row * side + col``) on a grid heat map."""
    rows, cols = torch.div(cells.nonzero().flatten(), side, rounding_mode="floor"), cells.nonzero().flatten() % side
    edge = None if marker in ("x", "+", "|", "_") else "k"  # line markers have no edge
    ax.scatter(cols.tolist(), rows.tolist(), marker=marker, s=28, c=color, edgecolors=edge, linewidths=0.5, label=label)


def save(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` as ``path`` (parents created), 120 dpi."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def new_figure(panels: int, *, width: float = 3.6, height: float = 3.4) -> tuple[Any, list[Any]]:
    """A constrained-layout matplotlib Figure with ``panels`` axes in one row."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * panels, height), layout="constrained")
    axes = fig.subplots(1, panels)
    return fig, list(axes) if panels > 1 else [axes]
