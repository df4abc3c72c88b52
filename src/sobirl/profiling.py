"""For benchmarks and memory tests: peak resident memory of a block of code (Linux ``/proc``), the machine line."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _load_libc()


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])  # "VmHWM:    1234 kB"
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Return freed memory to the OS and reset the resident high-water mark; False where unsupported."""
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)  # so memory freed earlier cannot hide a new peak
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def peak_memory_supported() -> bool:
    """Whether :class:`PeakMemory` can measure on this system (Linux with a writable ``/proc/self/clear_refs``)."""
    return _reset_peak()


class PeakMemory:
    """Context manager: ``mib`` is the peak resident memory of the block, in MiB above the resident size at its
    start (``VmHWM`` after the high-water mark was reset, minus ``VmRSS`` before), or None where unsupported."""

    def __enter__(self) -> PeakMemory:
        self.mib: float | None = None
        self._before = _status_kib("VmRSS") if _reset_peak() else None
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status_kib("VmHWM")
        if peak is not None and self._before is not None:
            self.mib = max(peak - self._before, 0) / 1024.0


def machine_line() -> str:
    """The machine benchmark numbers come from: OS, CPU model, cores, torch (and its threads), numpy, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"Machine: {platform.system()} {platform.machine()} ({cpu}), os.cpu_count()={os.cpu_count()}, "
        f"torch {torch.__version__}, torch.get_num_threads()={torch.get_num_threads()}, numpy {np.__version__}, "
        f"Python {platform.python_version()}."
    )


def command_line(argv: list[str] | None) -> str:
    """The command that ran a benchmark script, for its report: ``python script.py ARGS``."""
    return shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["python", sys.argv[0], *argv])


def write_report(path: Path, command: str, sections: list[str], seconds: float | None = None) -> None:
    """Write a benchmark's markdown report: the command (and its wall time), then ``sections`` (the machine line,
    tables, summaries), separated by blank lines; creates the parent directory."""
    timing = "" if seconds is None else f" ({seconds:.0f} s)"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join([f"Command: `{command}`{timing}", *sections]) + "\n")


def print_report(sections: list[str], markdown: Path | None, argv: list[str] | None, started: float) -> None:
    """Print a benchmark's ``sections`` (the machine line, settings, table rows, summary) and, when ``markdown`` is
    given, also write them there with the command line and the wall seconds since ``started``
    (``time.perf_counter()``)."""
    print("\n".join(sections))
    if markdown is not None:
        write_report(markdown, command_line(argv), sections, seconds=time.perf_counter() - started)
