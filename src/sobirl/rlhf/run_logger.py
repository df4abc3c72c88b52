"""What a deep RLHF run logs: one ``metrics.csv`` row per evaluation (:data:`METRIC_COLUMNS`; :func:`open_metrics`
cuts the file back to a checkpoint's rows when a run resumes) and TensorBoard scalars against agent steps
(:class:`RunLogger`, SB3's logger of the run: what SAC records and the metrics rows). The logger also watches SAC's
losses: a non-finite one stops the run (:class:`NonFiniteError`, which the reward update raises too).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import KVWriter, Logger
from torch.utils.tensorboard import SummaryWriter

from sobirl.rundir import METRICS_FILE, MetricsLogger, read_metrics

METRIC_COLUMNS = (
    "iteration",
    "agent_steps",
    "train_return",
    "eval_return",
    "preference_accuracy",
    "accuracy_pairs",
    "reward_loss",
    "exploration_norm",
    "alpha",
    "pairs",
    "steps_per_s",
    "wall_time",
)
"""Columns of ``metrics.csv``: the evaluation number, agent steps, the mean true return of the last
``return_window`` training episodes, the policy's mean true return on the evaluation environment (argmax or sampled
actions: ``eval_deterministic``), the reward net's accuracy on held-out pairs and how many pairs it was computed over
(those the labeller does not tie: an accuracy over few pairs is noise), the mean preference cross-entropy and
``|exploration term|`` over the last reward update's batches, SAC's temperature, the pairs queried so far, agent
steps per second since the previous row, and seconds since the run started (over resumes). Undefined values (no
episode yet, ``sac-true-reward``) are NaN."""


class NonFiniteError(RuntimeError):
    """A quantity of the run became NaN or infinite; the run stopped before its next checkpoint, so the last one
    written holds the last good state.

    Attributes:
        quantity: what became non-finite: ``reward output`` (the reward net's fragment returns), ``preference loss``
            (the cross-entropy), ``exploration term`` (the rule's second term), each checked at every reward
            mini-batch, or ``SAC <loss>`` (``actor_loss``, ``critic_loss``, ``ent_coef_loss``: every loss SAC
            records, checked at every gradient step).
        value: the offending value.
        agent_steps: the agent step it was met at.
        checkpoint: the last good checkpoint (None when the run had written none).
    """

    def __init__(self, quantity: str, value: float, agent_steps: int, checkpoint: Path | None) -> None:
        self.quantity, self.value, self.agent_steps, self.checkpoint = quantity, value, agent_steps, checkpoint
        kept = f"the last good checkpoint is {checkpoint}" if checkpoint is not None else "no checkpoint was written"
        super().__init__(
            f"non-finite {quantity} ({value}) at agent step {agent_steps}; the run stopped and {kept} (lower the "
            "learning rates or set grad_clip, then start again or resume from it)"
        )


class _TensorBoard(KVWriter):
    """The numbers SB3's logger dumps, as TensorBoard scalars tagged with their keys.

    Args:
        folder: the event files' folder.
        purge_step: where a resumed run continues: TensorBoard drops the points of this step and after that are
            already in ``folder`` (a killed run's, written after its checkpoint); None: a new run.
    """

    def __init__(self, folder: Path, purge_step: int | None) -> None:
        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if "tensorboard" not in excluded and isinstance(value, numbers.Real) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class RunLogger(Logger):
    """SB3's logger of a run: TensorBoard scalars in ``folder`` against agent steps (what SAC records: its losses,
    entropy coefficient and episode returns, and the run's metrics rows, :meth:`log_row`); a non-finite loss SAC
    records (SAC and DiscreteSAC record their losses' means after each ``train`` call) is passed to
    ``on_non_finite(quantity, value)``, which stops the run (the trainer raises :class:`NonFiniteError`).
    ``purge_step``: as :class:`_TensorBoard`'s."""

    def __init__(self, folder: Path, purge_step: int | None, on_non_finite: Callable[[str, float], object]) -> None:
        super().__init__(folder=str(folder), output_formats=[_TensorBoard(folder, purge_step)])
        self._on_non_finite = on_non_finite

    def record(self, key: str, value: Any, exclude: str | tuple[str, ...] | None = None) -> None:
        if key.startswith("train/") and key.endswith("loss") and not math.isfinite(float(value)):
            self._on_non_finite(f"SAC {key.removeprefix('train/')}", float(value))
        super().record(key, value, exclude)

    def log_row(self, row: Mapping[str, float], agent_steps: int) -> None:
        """Write a metrics row (but ``iteration``) and what SAC recorded since the last write, at ``agent_steps``."""
        for key, value in row.items():
            if key != "iteration":
                self.record(key, value)
        self.dump(step=agent_steps)


def open_metrics(run_dir: Path, rows: int) -> MetricsLogger:
    """A logger appending to ``metrics.csv`` in ``run_dir`` after its first ``rows`` rows (those of the checkpoint a
    run resumes from); a new file where there is none. TensorBoard is the run's :class:`RunLogger`'s."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return MetricsLogger(run_dir, METRIC_COLUMNS, tensorboard=False)
    kept = read_metrics(run_dir)[:rows]
    path.unlink()
    # rows of an older version lack its newer columns
    logger = MetricsLogger(run_dir, METRIC_COLUMNS, tensorboard=False)
    for row in kept:
        logger.log(row)
    return logger
