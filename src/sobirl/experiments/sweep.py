"""Sweeps: a grid of deep RLHF trials (environments x algorithms x any config fields x seeds) on local processes or
Ray, resumable.

Every trial is one ``sobirl rlhf`` run (:class:`~sobirl.rlhf.trainer.RLHFTrainer`) with the base config's fields and
its own ``env``, ``algo``, ``seed`` and grid point: one value of each ``grid`` key (any other key of
:class:`~sobirl.rlhf.config.RLHFConfig`, e.g. ``reward_lr``). The sweep lives in one directory, not
timestamped, so that running the same sweep again finds it::

    <root>/<name>/
        sweep.yaml          the grid: base config, algos, seeds, envs, grid, max_retries (written by the first run)
        failures.yaml       the trials that failed in the latest run, with their errors (absent when none failed)
        rlhf-<env>-<algo>[-<key>=<value>...]-seed<seed>/   one rlhf run directory per trial (config.yaml,
                            metrics.csv, checkpoints/, ...); e.g. rlhf-Pendulum-v1-drlhf-reward_lr=0.0001-seed0

:func:`run_sweep` checks everything it can before it writes anything, then runs what is missing: a trial whose
``metrics.csv`` reaches ``total_steps`` is skipped, one with a checkpoint is resumed from it, any other is started
afresh. Trials run side by side, ``workers`` at a time, in local worker processes or as Ray tasks
(:mod:`sobirl.experiments.sweep_backends`); a failed trial (an exception, or a
worker process that died) is retried, from its checkpoint when it has one, up to ``max_retries`` times, then
reported in :class:`SweepResult` and ``failures.yaml``. The grid itself (:class:`SweepSpec`, trial names) is
:mod:`sobirl.experiments.sweep_spec`, importable from here too; each attempt is one
:func:`~sobirl.experiments.rlhf_run.run_rlhf`.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import shutil
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from sobirl.experiments.rlhf_run import resume_rlhf, run_rlhf, start_rlhf
from sobirl.experiments.sweep_backends import TrialBackend, check_backend, open_backend
from sobirl.experiments.sweep_spec import (
    GRID_FIELDS,
    SWEEP_FILE,
    GridPoint,
    SweepSpec,
    Trial,
    grid_label,
    plain_value,
    point_label,
    trial_name,
)
from sobirl.rlhf.checkpoints import latest_checkpoint
from sobirl.rlhf.config import RLHFConfig
from sobirl.rundir import CONFIG_FILE, read_metrics

__all__ = [  # the grid (sweep_spec) with what runs it, from one module
    "EVENTS",
    "FAILURES_FILE",
    "LOCK_SUFFIX",
    "SWEEP_FILE",
    "EventHandler",
    "GridPoint",
    "SweepResult",
    "SweepSpec",
    "Trial",
    "TrialOutcome",
    "TrialTask",
    "grid_label",
    "is_complete",
    "plain_value",
    "point_label",
    "run_sweep",
    "run_trial",
    "trial_lock",
    "trial_name",
]

FAILURES_FILE = "failures.yaml"
EVENTS = ("start", "done", "skipped", "retry", "failed", "busy")
"""Kinds of :func:`run_sweep`'s ``on_event`` calls: a trial is submitted to a worker (detail: the attempt and
whether it resumes), finished all its steps, was already complete (also after a ``start``, when another process
completed it meanwhile), failed and goes back in the queue, failed for good (detail: the error), is being run by
another process (after a ``start``: its lock is held, :func:`trial_lock`)."""
LOCK_SUFFIX = ".lock"
"""A trial's lock file is ``<sweep dir>/<trial name>.lock`` (:func:`trial_lock`)."""

EventHandler = Callable[[str, str, str], None]
"""``on_event(kind, trial_name, detail)``: ``kind`` one of :data:`EVENTS`, ``detail`` one line for people."""

_SWEEP_HEADER = (
    "# base: the config every trial shares; its env, algo, seed and the grid's keys are replaced by each trial's\n"
)


@dataclass
class SweepResult:
    """What :func:`run_sweep` did, trial names in grid order.

    Attributes:
        sweep_dir: the sweep directory.
        done: trials that ran (started or resumed) to their last step in this run.
        skipped: trials that were already complete.
        failed: trials that failed on every attempt: name -> the last attempt's error (one line).
        busy: trials another process was running (their locks held); this run left them to it.
    """

    sweep_dir: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    busy: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no trial failed (every trial is complete, or being run by another process: ``busy``)."""
        return not self.failed


@dataclass(frozen=True)
class TrialTask:
    """What a worker process needs to run one attempt of a trial (picklable).

    Attributes:
        name: the trial's name.
        config: the trial's config.
        run_dir: the trial's run directory (absent, partial, resumable).
        command: the command line recorded in a fresh run's ``config.yaml``.
    """

    name: str
    config: RLHFConfig
    run_dir: Path
    command: tuple[str, ...]


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker process returns for one attempt: the final numbers, or the error that ended it.

    Attributes:
        name: the trial's name.
        error: None on success, else the exception's type and message on one line.
        traceback: the full traceback of ``error``.
        resumed_from: the agent steps of the checkpoint the attempt resumed from; None for a fresh start.
        agent_steps: agent steps of the last metrics row.
        eval_return: evaluation return of the last metrics row.
        busy: another process holds the trial's lock; nothing was run.
        complete: the trial was complete when its lock was taken (another process finished it); nothing was run.
    """

    name: str
    error: str | None = None
    traceback: str | None = None
    resumed_from: int | None = None
    agent_steps: int = 0
    eval_return: float = math.nan
    busy: bool = False
    complete: bool = False


def run_trial(task: TrialTask) -> TrialOutcome:
    """Run one attempt of a trial in this process (the worker function; top level, so spawn can pickle it).

    Takes the trial's lock first (:func:`trial_lock`; held until the attempt ends, so by the process that runs
    the trial): when another process holds it, returns a ``busy`` outcome; when the trial is complete by then,
    a ``complete`` one. Resumes from the run directory's latest checkpoint when it has one (after checking that its
    ``config.yaml`` is the trial's config), else starts afresh in a new directory (a partial one without a checkpoint
    is removed: a run killed before its first checkpoint has nothing to continue from). Writes ``return.png`` at the
    end, like ``sobirl rlhf``. An exception is returned in the outcome, never raised: the sweep goes on with other
    trials.
    """
    if task.config.threads is None:
        torch.set_num_threads(1)  # trials run side by side, one per core (RLHFTrainer sets the config's threads)
    with trial_lock(Path(task.run_dir)) as held:
        if not held:
            return TrialOutcome(task.name, busy=True)
        if is_complete(task.run_dir, task.config.total_steps):
            return TrialOutcome(task.name, complete=True)
        return _run_locked_trial(task)


def _run_locked_trial(task: TrialTask) -> TrialOutcome:
    """:func:`run_trial` once the trial's lock is held."""
    resumed_from = None
    try:
        run_dir = Path(task.run_dir)
        if latest_checkpoint(run_dir) is not None:
            stored = RLHFConfig.from_yaml(run_dir / CONFIG_FILE)
            if (
                stored.resolved() != task.config.resolved()
            ):  # sweep.yaml is checked, but a trial directory may have been edited or copied
                raise ValueError(
                    f"{run_dir / CONFIG_FILE} is not this trial's config; move the directory away to rerun the trial"
                )
            trainer = resume_rlhf(run_dir)
            resumed_from = trainer.steps
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir()
            trainer = start_rlhf(task.config, run_dir, command=task.command)
        last = run_rlhf(trainer).last
        return TrialOutcome(
            task.name, resumed_from=resumed_from, agent_steps=int(last["agent_steps"]), eval_return=last["eval_return"]
        )
    except Exception as err:  # reported to the parent; a KeyboardInterrupt still stops the worker
        return TrialOutcome(
            task.name, error=_one_line(err), traceback=traceback.format_exc(), resumed_from=resumed_from
        )


@contextlib.contextmanager
def trial_lock(run_dir: Path) -> Iterator[bool]:
    """Try to take the exclusive lock of the trial in ``run_dir``: ``<sweep dir>/<trial name>.lock``, locked with
    ``fcntl.flock``; yields whether this process holds it, and releases and removes it on exit.

    The operating system releases the lock when its process ends, even killed: a lock file left by a dead process
    is taken again. A lock file removed between opening and locking it is opened anew, so that two processes never
    both hold the lock of one trial. Without ``fcntl`` (Windows) yields True: no lock.
    """
    try:
        import fcntl
    except ImportError:
        yield True
        return
    path = run_dir.with_name(run_dir.name + LOCK_SUFFIX)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:  # removed by its releasing holder after we opened it
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())  # for people: which process runs the trial
        yield True
    finally:
        path.unlink(missing_ok=True)  # before the release: a waiting opener of this file retries (samestat)
        os.close(fd)


def is_complete(run_dir: str | os.PathLike[str], total_steps: int) -> bool:
    """Whether ``run_dir/metrics.csv`` has its row at ``total_steps`` (the run's last row); False when it is
    missing or unreadable. Checkpoints do not count: they may be deleted to save space once a run is done."""
    try:
        rows = read_metrics(run_dir)
    except (OSError, ValueError, csv.Error):  # absent, or cut mid-row by a kill
        return False
    return bool(rows) and rows[-1].get("agent_steps") == total_steps


def run_sweep(
    spec: SweepSpec,
    root: str | os.PathLike[str],
    name: str,
    *,
    on_event: EventHandler | None = None,
    command: Sequence[str] | None = None,
    backend: str = "local",
    address: str | None = None,
) -> SweepResult:
    """Run the trials of ``spec`` that are not complete in ``root/name``, ``spec.workers`` at a time.

    Before anything is written, the machine is checked (:meth:`SweepSpec.check_runnable`), and an existing
    ``sweep.yaml`` must hold the same grid (``workers`` and ``max_retries`` may change between runs). Then each
    trial is skipped (complete), resumed (it has a checkpoint) or started; a failed attempt is retried up to
    ``spec.max_retries`` times, at the end of the queue. A worker that dies (killed, out of memory) fails only its
    own trial (``sweep_backends``); the next run resumes it from its checkpoint. Several processes may run one sweep
    at once: each attempt holds its trial's lock (:func:`trial_lock`), so a trial another process is running is
    reported ``busy`` and left to it, and one it completed meanwhile ``skipped``; no trial runs twice.
    ``failures.yaml`` is removed at the start and written at the end when a trial failed. The backend starts only
    when a trial is left to run. Interrupting the sweep (Ctrl-C reaches the workers too) loses at most each running
    trial's steps since its last checkpoint: run it again to go on.

    Args:
        spec: the sweep.
        root: parent of the sweep directory; created if missing.
        name: the sweep directory's name, a single path component.
        on_event: called in this process as ``on_event(kind, trial_name, detail)`` for every event of
            :data:`EVENTS`, e.g. to show done / running / failed counts.
        command: the command line recorded in each new trial's ``config.yaml``; defaults to ``sys.argv``.
        backend: where the trials run, one of ``sweep_backends.BACKENDS``: ``"local"`` worker processes or
            ``"ray"`` tasks. Both give the same per-trial results for the same seeds.
        address: the Ray cluster to join (``"auto"``, ``"ray://head:10001"``); None starts a local Ray instance for
            the sweep. Only with ``backend="ray"``.

    Returns:
        The done, skipped and failed trials.

    Raises:
        ValueError: ``name`` is not a single path component, the machine cannot run the trials, or the sweep
            directory holds a different sweep.
        gymnasium.error.DependencyNotInstalled: an environment needs an uninstalled extra (MuJoCo, Atari), named
            in the message.
        ImportError: the ray backend without Ray installed.
    """
    if not isinstance(name, str) or not name or name in {".", ".."} or Path(name).name != name or "\\" in name:
        raise ValueError(f"sweep name must be a non-empty single path component, got {name!r}")
    check_backend(backend, address=address)
    spec.check_runnable()
    sweep_dir = Path(root) / name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    result = SweepResult(sweep_dir)
    emit: EventHandler = on_event or (lambda kind, trial, detail: None)
    with _locked(sweep_dir):  # one process at a time writes or checks sweep.yaml
        _write_or_check_spec(spec, sweep_dir)
        (sweep_dir / FAILURES_FILE).unlink(missing_ok=True)
    trials = spec.trials()
    todo = []
    for trial in trials:
        if is_complete(sweep_dir / trial.name, trial.config.total_steps):
            result.skipped.append(trial.name)
            emit("skipped", trial.name, f"complete ({trial.config.total_steps} agent steps)")
        else:
            todo.append(trial)
    failures: dict[str, dict[str, Any]] = {}
    if todo:
        runner = open_backend(backend, min(spec.workers, len(todo)), address=address)
        try:
            command = tuple(sys.argv if command is None else command)
            _run_trials(runner, spec, sweep_dir, todo, command, result, failures, emit)
        finally:  # also on an interrupt: running attempts are stopped, the failures so far are on disk
            runner.close()
            if failures:
                _write_yaml(sweep_dir / FAILURES_FILE, failures)
    order = {trial.name: i for i, trial in enumerate(trials)}
    for names in (result.done, result.skipped, result.busy):
        names.sort(key=order.__getitem__)
    result.failed = dict(sorted(result.failed.items(), key=lambda item: order[item[0]]))
    return result


def _run_trials(
    backend: TrialBackend,
    spec: SweepSpec,
    sweep_dir: Path,
    trials: Sequence[Trial],
    command: tuple[str, ...],
    result: SweepResult,
    failures: dict[str, dict[str, Any]],
    emit: EventHandler,
) -> None:
    """The scheduling loop of :func:`run_sweep`: keep every slot busy, collect outcomes, requeue failed attempts."""
    queue = deque(trials)
    attempts = dict.fromkeys((t.name for t in trials), 0)
    allowed = 1 + spec.max_retries
    slots = min(spec.workers, len(queue))
    running: dict[Future[TrialOutcome], tuple[Trial, int]] = {}
    while queue or running:
        busy = {slot for _, slot in running.values()}
        for slot in range(slots):
            if slot in busy or not queue:
                continue
            trial = queue.popleft()
            attempts[trial.name] += 1
            run_dir = sweep_dir / trial.name
            checkpoint = latest_checkpoint(run_dir)
            how = "fresh" if checkpoint is None else f"resume from {checkpoint.name.replace('-', ' ')}"
            emit("start", trial.name, f"attempt {attempts[trial.name]} of {allowed}, {how}")
            task = TrialTask(trial.name, trial.config, run_dir.absolute(), command)
            running[backend.submit(slot, run_trial, task)] = (trial, slot)
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in sorted(finished, key=lambda f: running[f][1]):  # slot order: deterministic events
            trial, slot = running.pop(future)
            outcome = _outcome(future, trial.name)
            backend.release(slot, future)
            if outcome.busy:
                result.busy.append(trial.name)
                emit("busy", trial.name, "being run by another process (its lock is held); left to it")
            elif outcome.complete:
                result.skipped.append(trial.name)
                emit("skipped", trial.name, f"complete ({trial.config.total_steps} agent steps)")
            elif outcome.error is None:
                result.done.append(trial.name)
                resumed = "" if outcome.resumed_from is None else f", resumed from step {outcome.resumed_from}"
                emit(
                    "done",
                    trial.name,
                    f"{outcome.agent_steps} agent steps, eval return {outcome.eval_return:.4g}{resumed}",
                )
            elif attempts[trial.name] < allowed:
                queue.append(trial)  # at the end: a transient failure (memory, a busy device) may have cleared
                emit("retry", trial.name, f"attempt {attempts[trial.name]} of {allowed} failed: {outcome.error}")
            else:
                result.failed[trial.name] = outcome.error
                failures[trial.name] = {"error": outcome.error, "attempts": attempts[trial.name]}
                if outcome.traceback:
                    failures[trial.name]["traceback"] = outcome.traceback
                emit("failed", trial.name, outcome.error)


def _outcome(future: Future[TrialOutcome], name: str) -> TrialOutcome:
    """The outcome of a finished attempt; a dead worker or an error outside :func:`run_trial` as a failed one."""
    err = future.exception()
    if err is None:
        return future.result()
    if isinstance(err, BrokenProcessPool):
        return TrialOutcome(name, error=f"the worker process died (killed, out of memory or crashed): {err}")
    return TrialOutcome(name, error=_one_line(err))


@contextlib.contextmanager
def _locked(sweep_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the sweep directory, waiting for it (released when this process ends, even killed):
    for the short work every run of a sweep does on shared files. No lock where ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(sweep_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_or_check_spec(spec: SweepSpec, sweep_dir: Path) -> None:
    """Write ``sweep.yaml``, or check that the existing one holds the same grid (base config without the fields
    each trial sets, algos, seeds, envs, grid); a different one is refused rather than mixing two grids in one
    directory. A ``sweep.yaml`` written before grids existed holds no ``grid``: the same as an empty one."""
    path = sweep_dir / SWEEP_FILE
    if not path.exists():
        _write_yaml(path, spec.to_dict(), header=_SWEEP_HEADER)
        return
    try:
        stored = SweepSpec.from_dict(yaml.safe_load(path.read_text()) or {})
    except (ValueError, TypeError, AttributeError, yaml.YAMLError) as err:
        raise ValueError(
            f"{path} is not a readable sweep file ({_one_line(err)}); move it away or use another name"
        ) from err
    differences = [
        f"{key}: {list(getattr(stored, key))} in {SWEEP_FILE}, {list(getattr(spec, key))} given"
        for key in ("algos", "seeds", "envs")
        if getattr(stored, key) != getattr(spec, key)
    ]
    old_grid, new_grid = stored.to_dict()["grid"], spec.to_dict()["grid"]
    if old_grid != new_grid:
        differences.append(f"grid: {old_grid} in {SWEEP_FILE}, {new_grid} given")
    old, new = _shared_fields(stored), _shared_fields(spec)
    differences += [
        f"base {key}: {old[key]!r} in {SWEEP_FILE}, {new[key]!r} given"
        for key in new
        if key in old and old[key] != new[key]
    ]
    if differences:
        raise ValueError(
            f"{sweep_dir} holds a different sweep ({'; '.join(differences)}); rerun it with its own settings or "
            "choose another sweep name"
        )


def _shared_fields(spec: SweepSpec) -> dict[str, Any]:
    """The config fields every trial of ``spec`` takes from its base config (not env, algo, seed, the grid keys)."""
    return {k: v for k, v in spec.base.to_dict().items() if k not in GRID_FIELDS and k not in (spec.grid or {})}


def _write_yaml(path: Path, values: Any, *, header: str = "") -> None:
    """Write a YAML file atomically (a kill leaves the old file or the new one, never half of one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + yaml.safe_dump(values, sort_keys=False))
    os.replace(tmp, path)


def _one_line(err: BaseException) -> str:
    """An exception as ``Type: message`` on one line."""
    return " ".join(f"{type(err).__name__}: {err}".split())
