"""Self-describing run directories: a fresh directory per run, its resolved config, and its metrics, written
(:class:`MetricsLogger`) and read back (:func:`read_metrics`, :func:`read_csv_rows`) in one place. A base module: the
tabular experiments and the deep RLHF trainer both write their runs through it.

Layout of a run directory::

    <root>/<name>-<YYYYmmdd-HHMMSS>[-<k>]/
        config.yaml     the fully resolved config, package versions and the command line
        metrics.csv     one row per logged step (flushed row by row)
        tensorboard/    the same metrics as TensorBoard scalars
"""

from __future__ import annotations

import csv
import importlib.metadata
import math
import numbers
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from torch.utils.tensorboard import SummaryWriter

import sobirl

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


def create_run_dir(root: Path, name: str) -> Path:
    """Create and return a new, empty directory ``root/<name>-<YYYYmmdd-HHMMSS>``.

    An existing directory is never reused: if the timestamped name is taken (two runs in the same second),
    ``-1``, ``-2``, ... is appended until ``mkdir`` succeeds, so concurrent runs cannot share a directory.

    Args:
        root: parent of all run directories; created if missing.
        name: run name, a single path component (no separators, not ``.`` or ``..``).

    Returns:
        The created directory.

    Raises:
        ValueError: ``name`` is empty or not a single path component.
        OSError: ``root`` cannot be created or written to.
    """
    if not name or name in {".", ".."} or Path(name).name != name or "\\" in name:
        raise ValueError(f"run name must be a non-empty single path component, got {name!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    candidate, suffix = root / base, 0
    while True:
        try:
            candidate.mkdir()  # atomic: fails instead of reusing a directory another run just made
            return candidate
        except FileExistsError:
            suffix += 1
            candidate = root / f"{base}-{suffix}"


VERSIONED = ("torch", "numpy", "gymnasium", "stable-baselines3", "mujoco", "ale-py", "tensorboard")
"""The installed distributions whose versions :func:`software_versions` records (those installed)."""


def software_versions() -> dict[str, str]:
    """The versions that shape a run's results: sobirl's, Python's, those of :data:`VERSIONED` that are installed, and
    ``git``: the commit of sobirl's source checkout (``+dirty`` when it has uncommitted changes), or
    ``not a git checkout``."""
    versions = {"sobirl": sobirl.__version__, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    versions["git"] = _git_commit(Path(sobirl.__file__).resolve().parent)
    return versions


def _git_commit(source: Path) -> str:
    """The commit checked out where ``source`` lies, ``+dirty`` with uncommitted changes; or ``not a git checkout``."""
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.returncode != 0:
            return "not a git checkout"
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:  # no git on the machine
        return "not a git checkout"
    return head.stdout.strip() + ("+dirty" if dirty else "")


def write_config(run_dir: Path, config: dict[str, Any], *, command: Sequence[str] | None = None) -> Path:
    """Write ``run_dir/config.yaml``: ``config`` followed by the software versions and the command line.

    Args:
        run_dir: the run directory.
        config: the fully resolved config, made of YAML-representable plain values (str, int, float, bool,
            None, lists and dicts of them).
        command: the command line that started the run; defaults to ``sys.argv``.

    Returns:
        The path of the written file.

    Raises:
        ValueError: ``config`` already uses one of the added keys (``versions``, ``command_line``).
    """
    added = {
        "versions": software_versions(),
        "command_line": shlex.join(sys.argv if command is None else command),
    }
    clash = sorted(set(added) & set(config))
    if clash:
        raise ValueError(f"config keys {', '.join(clash)} are reserved for what write_config adds")
    text = yaml.safe_dump({**config, **added}, sort_keys=False)  # fails before the file exists if unrepresentable
    path = Path(run_dir) / CONFIG_FILE
    with open(path, "x") as fh:
        fh.write(text)
    return path


class MetricsLogger:
    """Log metric rows to ``metrics.csv`` and to TensorBoard scalars in a run directory.

    The CSV header is ``columns``, or else the first row's keys; a row may omit columns (left empty) but not add new
    ones.
    Every numeric value except ``iteration`` becomes a TensorBoard scalar tagged with its key at step
    ``int(row["iteration"])``. Use it as a context manager so that an interrupted run still closes (and
    flushes) both outputs.

    Args:
        run_dir: the run directory; ``metrics.csv`` must not exist in it yet.
        columns: the CSV header, written at once (default: the first row's keys). Fixing it lets rows read back from
            an older file that lacks a newer column be logged again, that column left empty.
        tensorboard: write the TensorBoard scalars; False: the CSV only (a caller with its own TensorBoard writer).

    Example:
        >>> with MetricsLogger(run_dir) as logger:  # doctest: +SKIP
        ...     solve(prob, prob.x0, callback=logger.log)
    """

    def __init__(self, run_dir: Path, columns: Sequence[str] | None = None, *, tensorboard: bool = True) -> None:
        if columns is not None and "iteration" not in columns:
            raise ValueError(f"columns must include 'iteration', got {', '.join(columns)}")
        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / METRICS_FILE
        self.tensorboard_dir = self.run_dir / TENSORBOARD_DIR
        self._file = open(self.csv_path, "x", newline="")  # noqa: SIM115  (closed by close())
        self._csv: csv.DictWriter[str] | None = None
        if columns is not None:
            self._start(list(columns))
        self._tb = SummaryWriter(log_dir=str(self.tensorboard_dir)) if tensorboard else None
        self._closed = False

    def log(self, row: dict[str, float]) -> None:
        """Append one row to the CSV (flushed at once) and write its numeric values as TensorBoard scalars.

        Args:
            row: metrics of one step; must hold ``iteration``.

        Raises:
            ValueError: the row lacks ``iteration``, has a column outside the header, or the logger is closed.
        """
        if self._closed:
            raise ValueError("MetricsLogger is closed")
        if "iteration" not in row:
            raise ValueError(f"a metrics row needs an 'iteration' key, got keys {', '.join(row)}")
        writer = self._csv if self._csv is not None else self._start(list(row))
        extra = [key for key in row if key not in writer.fieldnames]
        if extra:
            raise ValueError(
                f"metrics row has columns {', '.join(extra)} outside the header {', '.join(writer.fieldnames)}"
            )
        writer.writerow(row)
        self._file.flush()  # an interrupted or crashed run keeps every row logged so far
        if self._tb is None:
            return
        step = int(row["iteration"])
        for key, value in row.items():
            if key != "iteration" and isinstance(value, numbers.Real) and not isinstance(value, bool):
                self._tb.add_scalar(key, value, global_step=step)

    def _start(self, columns: list[str]) -> csv.DictWriter[str]:
        """Write the CSV header; the writer of the rows."""
        self._csv = csv.DictWriter(self._file, fieldnames=columns, restval="")
        self._csv.writeheader()
        self._file.flush()
        return self._csv

    def close(self) -> None:
        """Flush and close the CSV file and the TensorBoard writer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The rows of ``run_dir/metrics.csv`` as numbers (empty cells: NaN)."""
    return read_csv_rows(Path(run_dir) / METRICS_FILE)


def read_csv_rows(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The rows of a CSV file of numbers with a header (a metrics file), as numbers (empty cells: NaN)."""
    with open(path, newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _number(text: str) -> float:
    """A metrics cell read back: an int where it was written as one, else a float (empty: NaN)."""
    if not text:
        return math.nan
    try:
        return int(text)
    except ValueError:
        return float(text)
