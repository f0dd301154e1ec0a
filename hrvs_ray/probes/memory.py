"""Per-step resident memory of this process, from ``/proc/self/status``.

``ru_maxrss`` only ever grows, so it cannot give one step's peak. Linux resets the
high-water mark ``VmHWM`` to the current RSS when ``5`` is written to
``/proc/self/clear_refs`` (kernel >= 4.0): reset before the step, read ``VmHWM`` after it.
The kernel batches RSS accounting per thread/CPU, so VmHWM is exact to within a few
hundred KiB -- noise next to a training step's hundreds of MiB. No torch import: this runs
around the timed step and must stay cheap (~10 us).
"""
from __future__ import annotations

_STATUS = "/proc/self/status"


def _status_kib(field: str) -> int:
    with open(_STATUS, "rb") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{_STATUS} has no {field.decode()} line (not Linux, or a kernel without it)")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS. False when the kernel or sandbox does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_bytes() -> int:
    """Current resident set size (VmRSS)."""
    return _status_kib(b"VmRSS:") * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size since start or the last :func:`reset_peak_rss` (VmHWM)."""
    return _status_kib(b"VmHWM:") * 1024


def release_free_heap() -> bool:
    """Hand the allocator's free heap back to the kernel (glibc ``malloc_trim(0)``), so the
    next step's RSS peak is its own: measured with benchmarks/memory_carryover.py, a small
    step right after a large one otherwise starts on the heap the large one left behind
    and peaks 1.4x higher than the same step alone, with a 'growth' of zero. The step then
    re-faults its pages: 1.09x the step time (benchmarks/harness_overhead.py), which is why
    it is a sweep setting (execution.release_heap). False where the C library has no
    malloc_trim (musl)."""
    from .syscalls import libc

    trim = getattr(libc(), "malloc_trim", None)
    return bool(trim(0)) if trim is not None else False
