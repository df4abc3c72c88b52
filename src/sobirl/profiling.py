"""Peak resident memory of a block of code, for benchmarks and memory tests (Linux ``/proc``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from pathlib import Path

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
