"""The figures of a deep RLHF run: true return against agent steps; learned against true reward along an episode."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
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
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    learned_ax = ax.twinx()
    steps = range(len(true_rewards))
    true_line = ax.plot(steps, true_rewards, color="tab:blue", label="true reward")
    learned_line = learned_ax.plot(steps, learned_rewards, color="tab:orange", label="learned reward")
    ax.set_xlabel("agent step of the episode")
    ax.set_ylabel("true reward", color="tab:blue")
    learned_ax.set_ylabel(learned_label, color="tab:orange")
    ax.grid(True, alpha=0.4)
    ax.legend(handles=true_line + learned_line)
    ax.set_title(title)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
