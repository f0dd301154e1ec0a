"""Per-step resident memory of this process, from ``/proc/self/status``.

``ru_maxrss`` only ever grows, so it cannot give one step's peak. Linux resets the
high-water mark ``VmHWM`` to the current RSS when ``5`` is written to
``/proc/self/clear_refs`` (kernel >= 4.0): reset before the step, read ``VmHWM`` after it.
The kernel batches RSS accounting per thread/CPU, so VmHWM is exact to within a few
hundred KiB -- noise next to a training step's hundreds of MiB. No torch import: this runs
around the timed step and must stay cheap (~10 us).

**Memory that does not depend on how the process started.** A cell forked from a zygote that
imported torch starts with the parent's anonymous pages (copied page tables) but without the
page-table entries of read-only file-backed mappings (Linux does not copy those at fork): its
RSS leaves out the library code it has not touched, ~300 MB below a fresh process's. So a
step's memory is split: the anonymous part (heap, tensors, the interpreter's data) is the
same whichever way the process started, and is measured per step (:class:`StepMemory`); the
file-backed part is the libraries', measured once per node in a fresh process that imported
and ran the training code (``train.library_baseline.measure_library``). ``peak_rss_bytes`` is their sum: what a
fresh process reads. Measured on a 2-vCPU VM (ResNet18, 4x3x224x224): peak anonymous 687 MB
fresh vs 688 MB forked; file-backed 388 MB fresh vs 81 MB forked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_STATUS = "/proc/self/status"
_FIELDS = (b"VmHWM:", b"VmRSS:", b"RssAnon:", b"RssFile:", b"RssShmem:")


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
    re-faults its pages: 1.08x the step time (benchmarks/harness_overhead.py), which is why
    it is a sweep setting (execution.release_heap). False where the C library has no
    malloc_trim (musl)."""
    from .syscalls import libc

    trim = getattr(libc(), "malloc_trim", None)
    return bool(trim(0)) if trim is not None else False


def status_bytes() -> dict[str, int]:
    """VmHWM, VmRSS, RssAnon, RssFile and RssShmem of this process, bytes (one read)."""
    got: dict[str, int] = {}
    with open(_STATUS, "rb") as f:
        for line in f:
            if line.startswith(_FIELDS):
                got[line.split(b":")[0].decode()] = int(line.split()[1]) * 1024
    missing = [k.decode()[:-1] for k in _FIELDS if k.decode()[:-1] not in got]
    if missing:
        raise RuntimeError(f"{_STATUS} has no {', '.join(missing)} line (a kernel before 4.5, or not Linux)")
    return got


def file_backed(st: dict[str, int]) -> int:
    """The file-backed and shared part of a status reading: what fork leaves out."""
    return st["RssFile"] + st["RssShmem"]


@dataclass(frozen=True)
class StepMemory:
    """One step's memory, taken around it: ``begin`` after the peak reset, ``end`` after the step.

    The step's peak anonymous memory is read as VmHWM less the file-backed pages at the step's
    end. File-backed pages only grow during a step (code and data of libraries touched for the
    first time), so the true anonymous peak lies between that and VmHWM less the file-backed
    pages at the start: ``file_growth_bytes`` is the width of that bound, stored beside it."""
    start: dict[str, int]

    @classmethod
    def begin(cls) -> StepMemory:
        return cls(status_bytes())

    def end(self, library_bytes: int | None = None) -> dict[str, Any]:
        """The step's memory columns. ``library_bytes`` (the node's, see ``train.library_baseline``)
        makes ``peak_rss_bytes`` and ``rss_start_bytes`` fresh-process figures; without it they
        are this process's own (VmHWM), and ``library_bytes`` is null until the store adds it."""
        st = status_bytes()
        file_end, file_start = file_backed(st), file_backed(self.start)
        # VmHWM is folded from per-thread counters lazily (up to ~200 KiB behind): the peak is
        # at least what RSS was when the step started or is now
        hwm = max(st["VmHWM"], self.start["VmRSS"], st["VmRSS"])
        peak_anon = max(hwm - file_end, self.start["RssAnon"], st["RssAnon"])
        row = {"vmhwm_bytes": hwm, "peak_anon_bytes": peak_anon, "anon_start_bytes": self.start["RssAnon"],
               "file_start_bytes": file_start, "file_growth_bytes": file_end - file_start,
               "growth_bytes": peak_anon - self.start["RssAnon"], "library_bytes": library_bytes}
        return row | with_library(row, library_bytes)


def with_library(row: dict[str, Any], library_bytes: int | None) -> dict[str, Any]:
    """``peak_rss_bytes`` and ``rss_start_bytes`` of a step row: the node's library baseline plus
    the step's anonymous memory when the baseline is known, else this process's own readings."""
    if library_bytes is None:
        return {"peak_rss_bytes": row["vmhwm_bytes"], "rss_start_bytes": row["anon_start_bytes"]
                + row["file_start_bytes"]}
    return {"peak_rss_bytes": library_bytes + row["peak_anon_bytes"],
            "rss_start_bytes": library_bytes + row["anon_start_bytes"], "library_bytes": library_bytes}
