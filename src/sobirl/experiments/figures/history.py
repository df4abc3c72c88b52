"""The figures of one run, from its history: a tabular run's convergence (``plot.png`` of ``sobirl synthetic``), a
deep RLHF run's returns against agent steps (``return.png`` of ``sobirl rlhf`` and of each sweep trial), and one
episode's learned against true reward (``sobirl evaluate``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sobirl.experiments.figures.style import LEGEND_FONTSIZE, new_figure, save, style_axes


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

    fig = new_figure(11, 4.2)
    ax_f, ax_g = fig.subplots(1, 2)
    iters, values = series["objective"]
    if optimum is None:
        ax_f.plot(iters, values)
        style_axes(ax_f, xlabel="iteration", ylabel="f", title="objective f")
    else:
        ax_f.plot(iters, [v - optimum for v in values])
        ax_f.set_yscale("log", nonpositive="mask")
        style_axes(ax_f, xlabel="iteration", ylabel=f"f - f*   (f* = {optimum:g})", title="optimality gap f - f*")
    iters, values = series["grad_norm"]
    ax_g.plot(iters, values, color="tab:red")
    ax_g.set_yscale("log", nonpositive="mask")
    style_axes(ax_g, xlabel="iteration", ylabel="|grad phi|", title="hyper-gradient norm |grad phi|")
    fig.suptitle(title)
    return save(fig, path)


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
    fig = new_figure(6.5, 4.2)
    ax = fig.subplots()
    for key, label in (("eval_return", "evaluation (deterministic)"), ("train_return", "training episodes")):
        points = [(row["agent_steps"], row[key]) for row in rows if not math.isnan(row[key])]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=label)
    style_axes(ax, xlabel="agent steps", ylabel="true episodic return", title=title, legend=True)
    return save(fig, path)


def plot_reward_vs_true(
    true_rewards: Sequence[float],
    learned_rewards: Sequence[float],
    path: str | Path,
    *,
    title: str,
    learned_label: str = "learned reward",
) -> Path:
    """Save a PNG of one episode's true reward (left axis) and learned reward (right axis, its own scale: the learned
    reward is known up to an affine map) against the agent step.

    Args:
        true_rewards: the environment's reward at each step.
        learned_rewards: the reward net's reward at the same steps.
        path: where to write the PNG.
        title: the figure title.
        learned_label: the right axis's label.

    Returns:
        The path of the PNG.
    """
    fig = new_figure(6.5, 4.2)
    ax = fig.subplots()
    learned_ax = ax.twinx()
    steps = range(len(true_rewards))
    true_line = ax.plot(steps, true_rewards, color="C0", label="true reward")
    learned_line = learned_ax.plot(steps, learned_rewards, color="C1", label="learned reward")
    style_axes(ax, xlabel="agent step of the episode", title=title)
    ax.set_ylabel("true reward", color="C0")
    learned_ax.set_ylabel(learned_label, color="C1")
    ax.legend(handles=true_line + learned_line, fontsize=LEGEND_FONTSIZE)
    return save(fig, path)
