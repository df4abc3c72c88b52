"""One deep RLHF run, the pipeline behind ``sobirl rlhf`` and every trial of ``sobirl sweep``: write the run
directory's ``config.yaml`` and build the trainer (:func:`start_rlhf`, or :func:`resume_rlhf` from the latest
checkpoint), train to ``total_steps`` and plot the returns (:func:`run_rlhf`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from sobirl.experiments import tracking
from sobirl.experiments.figures import plot_returns
from sobirl.rlhf.artifacts import POLICY_FILE, REWARD_NET_FILE
from sobirl.rlhf.checkpoints import CHECKPOINT_DIR, RETURN_PLOT
from sobirl.rlhf.config import RLHFConfig, check_device
from sobirl.rlhf.environments import make_env
from sobirl.rlhf.trainer import RLHFTrainer
from sobirl.rundir import CONFIG_FILE, METRICS_FILE, TENSORBOARD_DIR, create_run_dir, read_metrics, write_config

EXPERIMENT = "rlhf"
"""The ``experiment`` of an rlhf run's ``config.yaml``."""


@dataclass(frozen=True)
class RLHFResult:
    """A finished run.

    Attributes:
        paths: what the run directory holds, by name: ``run_dir``, ``config``, ``metrics``, ``tensorboard``, ``plot``,
            ``checkpoints``, ``policy`` and, with a reward net, ``reward_net``.
        last: the last row of ``metrics.csv``.
    """

    paths: dict[str, Path]
    last: dict[str, float]


def check_runnable(config: RLHFConfig) -> None:
    """Check what the run needs of this machine, before anything is written: its device and its environment.

    Raises:
        ValueError: the device is unavailable, or the environment is unknown or unsuitable (naming the fix).
        gymnasium.error.DependencyNotInstalled: the environment needs an uninstalled extra (MuJoCo, Atari).
    """
    check_device(config.device)
    make_env(config).close()


def new_rlhf_run(
    config: RLHFConfig, output_dir: str | os.PathLike[str], name: str, *, command: Sequence[str] | None = None
) -> RLHFTrainer:
    """A new run of ``config`` in a new run directory ``output_dir/name-<timestamp>``, ready to :func:`run_rlhf`; the
    machine is checked first (:func:`check_runnable`), so a bad device or environment writes nothing."""
    check_runnable(config)
    return start_rlhf(config, create_run_dir(output_dir, name), command=command)


def start_rlhf(config: RLHFConfig, run_dir: Path, *, command: Sequence[str] | None = None) -> RLHFTrainer:
    """Write ``run_dir/config.yaml`` (the resolved config and ``command``; ``run_dir`` exists and holds no run) and
    return the run's trainer at step 0."""
    write_config(run_dir, {"experiment": EXPERIMENT, **config.resolved()}, command=command)
    return RLHFTrainer(config, run_dir)


def resume_rlhf(run_dir: str | os.PathLike[str]) -> RLHFTrainer:
    """The run in ``run_dir`` at its newest intact checkpoint (:meth:`RLHFTrainer.resume`)."""
    return RLHFTrainer.resume(run_dir)


def run_rlhf(trainer: RLHFTrainer, *, progress: bool = False, wandb_project: str | None = None) -> RLHFResult:
    """Train ``trainer``'s run to its ``total_steps``, then plot its returns (``return.png``).

    Args:
        trainer: a run from :func:`start_rlhf`, :func:`new_rlhf_run` or :func:`resume_rlhf`.
        progress: show a progress bar of the agent steps.
        wandb_project: send the run to this Weights & Biases project (:func:`tracking.tracked`); None: not sent.

    Raises:
        NonFiniteError, CheckpointWriteError: as :meth:`RLHFTrainer.run`; the last good checkpoint is kept.
        KeyboardInterrupt: the run was interrupted; it resumes from its latest checkpoint.
    """
    config, run_dir = trainer.config, Path(trainer.run_dir)
    bar = tqdm(total=config.total_steps, initial=trainer.steps, desc=config.algo, unit="step", disable=not progress)
    track = (
        nullcontext() if wandb_project is None else tracking.tracked(run_dir, config.resolved(), project=wandb_project)
    )
    with track, bar:
        trainer.run(on_steps=bar.update if progress else None)
    rows = read_metrics(run_dir)
    plot = plot_returns(rows, run_dir / RETURN_PLOT, title=f"{config.algo} on {config.env}, seed {config.seed}")
    paths = {
        "run_dir": run_dir,
        "config": run_dir / CONFIG_FILE,
        "metrics": run_dir / METRICS_FILE,
        "tensorboard": run_dir / TENSORBOARD_DIR,
        "plot": plot,
        "checkpoints": run_dir / CHECKPOINT_DIR,
        "policy": run_dir / POLICY_FILE,
        **({"reward_net": run_dir / REWARD_NET_FILE} if trainer.reward_net is not None else {}),
    }
    return RLHFResult(paths, rows[-1])
