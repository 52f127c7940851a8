"""Peak resident memory of a block of code, for diagnostics and the benchmark.

Why /proc: numpy and OpenCV allocate outside Python's allocator, so tracemalloc misses most
of it. On Linux, writing "5" to /proc/self/clear_refs resets the kernel's high-water mark
(VmHWM), so the peak of one restoration can be read in a long-running process. Elsewhere we
fall back to `ru_maxrss`, the process's lifetime peak (an upper bound).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from types import TracebackType

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _read_status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_bytes() -> int:
    kib = _read_status_kib("VmRSS")
    return kib * 1024 if kib is not None else 0


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter; False when the platform does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    kib = _read_status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class PeakMemory:
    """`with PeakMemory() as pm: ...` then `pm.peak_bytes` (process peak RSS inside the block).

    Nested use is safe but an inner block resets the counter the outer one reads, so the
    outer value is then a lower bound; `core.restore` only measures when the restorer did not.
    """

    def __init__(self) -> None:
        self.peak_bytes = 0
        self.start_bytes = 0

    def __enter__(self) -> PeakMemory:
        reset_peak()
        self.start_bytes = current_rss_bytes()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.peak_bytes = max(peak_rss_bytes(), current_rss_bytes())
