"""Where a sweep's trial attempts run: worker processes on this machine, or tasks on a Ray cluster.

A backend runs ``fn(task)`` for one attempt in a numbered slot and hands back a :class:`concurrent.futures.Future`;
the sweep's scheduling loop (``sweep._run_trials``) is the same for every backend. A future that raises means the
attempt's process died (``fn`` itself returns its errors): the sweep reports and retries it.

- ``"local"`` (:class:`LocalProcesses`): one single-process executor per slot, spawned, so a worker that dies
  (killed, out of memory) fails only its own trial; a worker exits when the sweep process is gone.
- ``"ray"`` (:class:`RayTasks`): one Ray task per attempt, one CPU each, no Ray-level retries (the sweep retries).
  Without an address, a local Ray instance is started for the sweep and stopped after it; with one (``"auto"``,
  ``"ray://head:10001"``), the sweep joins that cluster. Trials read and write the sweep directory, so on a cluster
  of several machines it must be on a file system every node mounts at the same path, and every node needs sobirl
  installed. Ray is the optional extra ``sobirl[ray]``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from sobirl.validation import check_choice

BACKENDS = ("local", "ray")
RAY_MISSING = 'the ray backend needs Ray, which is not installed; install it with: pip install "sobirl[ray]"'


class TrialBackend(Protocol):
    """Runs attempts in slots ``0 .. workers-1``, at most one attempt per slot at a time."""

    def submit(self, slot: int, fn: Callable[[Any], Any], task: Any) -> Future[Any]:
        """Start ``fn(task)`` in ``slot`` (free); its future gives ``fn``'s result or the reason it died."""
        ...

    def release(self, slot: int, future: Future[Any]) -> None:
        """Called once ``slot``'s attempt ``future`` is done, before the slot's next submit."""
        ...

    def close(self) -> None:
        """Stop what still runs (an interrupted sweep) and free the backend's resources."""
        ...


def check_backend(name: str, *, address: str | None = None) -> None:
    """Check what :func:`open_backend` needs, without starting anything.

    Raises:
        ValueError: an unknown backend, or an address for the local one.
        ImportError: ``"ray"`` without Ray installed (:data:`RAY_MISSING`).
    """
    check_choice("backend", name, BACKENDS)
    if name == "local" and address is not None:
        raise ValueError(f"address is for the ray backend only, got {address!r} with backend 'local'")
    if name == "ray":
        _import_ray()


def open_backend(name: str, workers: int, *, address: str | None = None) -> TrialBackend:
    """The backend ``name`` (one of :data:`BACKENDS`) with ``workers`` slots; ``address`` only for ``"ray"``
    (raises as :func:`check_backend`)."""
    check_backend(name, address=address)
    return LocalProcesses(workers) if name == "local" else RayTasks(address)


class LocalProcesses:
    """One single-process executor per slot (spawn): a dead worker breaks its own executor only, so the crash is
    pinned on the right trial and the other running trials go on (a shared pool would kill them all)."""

    def __init__(self, workers: int) -> None:
        self._slots: list[ProcessPoolExecutor | None] = [None] * workers
        self._context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads

    def submit(self, slot: int, fn: Callable[[Any], Any], task: Any) -> Future[Any]:
        executor = self._slots[slot]
        if executor is not None:
            try:
                return executor.submit(fn, task)
            except BrokenProcessPool:  # its worker died between two trials
                executor.shutdown(wait=True)
        executor = ProcessPoolExecutor(
            max_workers=1, mp_context=self._context, initializer=_watch_parent, initargs=(os.getpid(),)
        )
        self._slots[slot] = executor
        return executor.submit(fn, task)

    def release(self, slot: int, future: Future[Any]) -> None:
        executor = self._slots[slot]
        if executor is not None and isinstance(future.exception(), BrokenProcessPool):
            executor.shutdown(wait=True)
            self._slots[slot] = None  # a fresh process for the slot's next trial

    def close(self) -> None:
        for executor in self._slots:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)


class RayTasks:
    """One Ray task per attempt (``num_cpus=1``, ``max_retries=0``); a local Ray instance when no address is
    given, stopped again by :meth:`close`."""

    def __init__(self, address: str | None) -> None:
        ray = _import_ray()
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            # Ray runs its workers at nice 15 by default: a trial would then lose the cores to anything else on the
            # machine (measured: importing the trainer took 24 s instead of 2 s beside other runs), unlike a local one
            os.environ.setdefault("RAY_worker_niceness", "0")
            # the workers' output would interleave with the sweep's progress display; errors come back in outcomes
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        self._running: dict[int, Any] = {}  # slot -> ObjectRef

    def submit(self, slot: int, fn: Callable[[Any], Any], task: Any) -> Future[Any]:
        remote = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        ref = remote.remote(task)
        self._running[slot] = ref
        return ref.future()

    def release(self, slot: int, future: Future[Any]) -> None:
        self._running.pop(slot, None)

    def close(self) -> None:
        for ref in self._running.values():
            self._ray.cancel(ref, force=True)
        self._running.clear()
        if self._started:
            self._ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError(RAY_MISSING) from err
    return ray


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit when the sweep process is gone (killed), so no orphan keeps writing a trial that
    the next run of the sweep would run again."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="sweep-parent-watch", daemon=True).start()
