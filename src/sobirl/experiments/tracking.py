"""Experiment tracking: a run sent to Weights & Biases (``sobirl rlhf --track``), its TensorBoard scalars synced.

W&B is an optional extra (``pip install "sobirl[track]"``); :func:`tracked` fails with a one-line message naming the
extra when it is missing.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

MISSING = 'Weights & Biases is not installed; --track needs it: pip install "sobirl[track]"'


def tracked(run_dir: Path, config: Mapping[str, Any], *, project: str) -> AbstractContextManager[None]:
    """A context that sends the run in ``run_dir`` to W&B while it is open: its config, and every TensorBoard scalar
    the run writes (``sync_tensorboard``: SAC's losses and the metrics rows, against agent steps). The W&B run's id is
    the run directory's name, so a resumed run continues the same W&B run. Enter it before any TensorBoard writer.

    Raises:
        ImportError: ``wandb`` is not installed (:data:`MISSING`), at once.
    """
    try:
        wandb = importlib.import_module("wandb")
    except ImportError as err:
        raise ImportError(MISSING) from err
    return _wandb_run(wandb, run_dir, config, project)


@contextmanager
def _wandb_run(wandb: Any, run_dir: Path, config: Mapping[str, Any], project: str) -> Iterator[None]:
    wandb.init(
        project=project,
        name=run_dir.name,
        id=re.sub(r"[^A-Za-z0-9_-]", "-", run_dir.name),  # W&B ids: letters, digits, '-' and '_'
        resume="allow",
        dir=str(run_dir),
        config=dict(config),
        sync_tensorboard=True,
    )
    try:
        yield
    finally:
        wandb.finish()
