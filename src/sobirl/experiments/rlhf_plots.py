"""The figure of a deep RLHF run: true return against agent steps."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from matplotlib.figure import Figure


def plot_returns(rows: Iterable[Mapping[str, float]], path: str | Path, *, title: str) -> Path:
    """Save a PNG of the evaluation return (deterministic policy) and the training return (recent episodes)
    against ``agent_steps``; NaN values (no episode finished yet) are left out.

    Args:
        rows: metrics rows with ``agent_steps``, ``eval_return`` and ``train_return``.
        path: where to write the PNG.
        title: the figure title.

    Returns:
        The path of the PNG.
    """
    rows = list(rows)
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")  # not registered with pyplot: no global state
    ax = fig.subplots()
    for key, label in (("eval_return", "evaluation (deterministic)"), ("train_return", "training episodes")):
        points = [(row["agent_steps"], row[key]) for row in rows if not math.isnan(row[key])]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=label)
    ax.set_xlabel("agent steps")
    ax.set_ylabel("true episodic return")
    ax.grid(True, alpha=0.4)
    ax.legend()
    ax.set_title(title)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
