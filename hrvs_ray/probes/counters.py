"""Per-step hardware and software counters of the whole process, through ``perf_event_open``:
``c = open_counters("generic")`` once per cell, then ``c.begin()`` / ``c.end()`` around each
step (``end`` returns the steps table's counter columns), ``c.close()`` at the end.

Why ctypes and not a library: the Python perf bindings are not on PyPI, pin to kernel headers
or need root; the syscall needs one 112-byte struct and ``read()``, and every failure surfaces
as an errno we can explain.

How the whole process is counted: one event group per thread (``/proc/self/task``,
``pid=tid``), *without* ``inherit``, and every :meth:`Counters.begin` opens groups for threads
that appeared since (torch's OpenMP pool, data threads): each compute thread has a group of
its own. Why not ``inherit``: the kernel folds an inherited child's counts *and times* into
its parent's counter, so torch's whole pool would be read, and scaled, as one thread — the
per-thread scaling below would then be a scaling of sums. Reads sum all threads.

Partial steps (:mod:`.partial`): a thread with no group during a step -- its open failed (no
file descriptor left, ...), or it was born during the step -- is counted in the step's
``uncounted_threads`` and ``counter_status`` reads "partial: N threads uncounted (cause)". A
thread born and gone within one step is seen by no snapshot; each step's summed task-clock is
therefore checked against the process's CPU time and the step marked partial beyond 5 %. The
groups of exited threads are closed after their last read.

Groups: cycles, instructions and the LLC event are one group (``PERF_FORMAT_GROUP``) so they are
scheduled on the PMU together and their ratios (IPC, MPKI) stay consistent. Should a kernel
refuse a group read (EINVAL), each event gets its own fd, scaled on its own, and
:attr:`Counters.grouping` says so.

Multiplexing: each thread's (group's) count is scaled by its own ``time_enabled / time_running``
*before* the threads are summed -- threads are multiplexed differently, so scaling the sums
would weight them wrongly. Per step, ``counter_time_fraction`` = (sum of time_running) / (sum
of time_enabled) over the threads that ran: the share of the step's thread time the group was
actually counted (1.0 = never multiplexed; the smallest over events when ungrouped), and
``counter_scaling`` = the smallest single thread's running/enabled. Both cover threads *with* a
group only; threads without one are what ``uncounted_threads`` reports.

Privileges: hardware events use ``exclude_kernel=1, exclude_hv=1`` (user-space counting), which
``perf_event_paranoid=2`` allows for one's own process. Software events are opened counting
kernel time too when allowed (context switches happen in the kernel, so a user-only
context-switch count is always 0); under ``paranoid>=2`` without CAP_PERFMON they fall back to
user-only, and context switches then come from ``getrusage`` (all threads) instead. The
LLC event's grammar is :mod:`.events`'.
"""
from __future__ import annotations

import errno
import os
import resource
import struct
import time
from dataclasses import dataclass, field

from . import partial
from .events import HW_EVENTS, SW_EVENTS, Event, EventSpecError, parse_llc_event
from .perf import (
    FLAG_EXCLUDE_HV,
    FLAG_EXCLUDE_KERNEL,
    FMT_GROUP,
    FMT_TOTAL_TIME_ENABLED,
    FMT_TOTAL_TIME_RUNNING,
    explain_errno,
    has_cpu_pmu,
    open_event,
    paranoid,
)

__all__ = ["SAMPLE_KEYS", "Counters", "explain_errno", "has_cpu_pmu", "open_counters", "probe_events",
           "scale_step"]

SAMPLE_KEYS = ("cycles", "instructions", "llc_misses", "counter_status", "counter_scaling",
               "counter_time_fraction", "llc_event", "task_clock_ns", "page_faults", "context_switches",
               "cpu_seconds", "uncounted_threads")

# per thread (one fd set): per event (value, time_enabled, time_running)
Reading = list[tuple[int, int, int]]


@dataclass
class _Set:
    """Events opened as a group (or one fd each when the kernel refuses group reads), per thread."""
    events: tuple[Event, ...]
    grouped: bool
    flags: int = 0
    fds: dict[int, list[int]] = field(default_factory=dict)   # tid -> one fd per event (leader first)
    failed: dict[int, int] = field(default_factory=dict)      # tid -> errno of its last failed open

    def add_threads(self, tids: list[int]) -> None:
        """Open groups on threads that have none yet (a thread that exited meanwhile is skipped).
        A thread whose open fails is remembered in :attr:`failed` (and retried next time); the
        error is raised only while no thread has a group, so that an unusable event is told apart
        from a thread that found no file descriptor left."""
        fmt = FMT_TOTAL_TIME_ENABLED | FMT_TOTAL_TIME_RUNNING | (FMT_GROUP if self.grouped else 0)
        for tid in tids:
            if tid in self.fds:
                continue
            fds: list[int] = []
            try:
                for ev in self.events:
                    fds.append(open_event(ev, tid, fds[0] if (self.grouped and fds) else -1, fmt, self.flags))
            except OSError as e:
                for fd in fds:
                    os.close(fd)
                if e.errno == errno.ESRCH:      # the thread exited meanwhile
                    continue
                if not self.fds:
                    raise
                self.failed[tid] = e.errno
                continue
            self.fds[tid] = fds
            self.failed.pop(tid, None)

    def read(self) -> list[Reading]:
        """Per thread (fd set), per event: (raw value, time_enabled, time_running)."""
        n = len(self.events)
        out = []
        for fds in self.fds.values():
            if self.grouped:        # a group is scheduled as one: its times are shared
                data = struct.unpack(f"{3 + n}Q", os.read(fds[0], 8 * (3 + n)))
                out.append([(data[3 + i], data[1], data[2]) for i in range(n)])
            else:
                out.append([struct.unpack("3Q", os.read(fd, 24)) for fd in fds])
        return out

    def drop_exited(self, alive: set[int]) -> None:
        """Close the groups of threads that have exited (their final counts were read already)."""
        for tid in [t for t in self.fds if t not in alive]:
            for fd in self.fds.pop(tid):
                os.close(fd)
        self.failed = {t: e for t, e in self.failed.items() if t in alive}

    def close(self) -> None:
        for fds in self.fds.values():
            for fd in fds:
                os.close(fd)
        self.fds = {}


def _open_set(events: tuple[Event, ...], tids: list[int], flags: int) -> _Set:
    """Open ``events`` on every thread; grouped unless the kernel refuses group reads."""
    for grouped in (True, False):
        s = _Set(events, grouped, flags)
        try:
            s.add_threads(tids)
            return s
        except OSError as e:
            s.close()
            if not (grouped and e.errno == errno.EINVAL and len(events) > 1):
                raise
    raise AssertionError("unreachable")


def scale_step(before: list[Reading], after: list[Reading]) -> tuple[list[int] | None, float | None,
                                                                     float | None, str | None]:
    """One step's counts from two reads: each thread scaled by its own enabled/running, then summed.

    Returns (counts per event or None, counter_time_fraction, counter_scaling, problem or None).
    """
    n = len(before[0]) if before else 0
    totals, enabled, running = [0] * n, [0] * n, [0] * n
    worst: float | None = None
    for t0, t1 in zip(before, after, strict=False):
        for i, ((v0, e0, r0), (v1, e1, r1)) in enumerate(zip(t0, t1, strict=False)):
            de, dr = e1 - e0, r1 - r0
            if de <= 0:
                continue            # this thread did not run while counting
            enabled[i] += de
            running[i] += dr
            worst = dr / de if worst is None else min(worst, dr / de)
            if dr > 0:
                totals[i] += round((v1 - v0) * de / dr)
    if not any(enabled):
        return None, None, None, "not counted: no thread ran while counting (time_enabled=0)"
    if not any(running):
        return None, 0.0, 0.0, "not counted: counters were multiplexed out for the whole step (time_running=0)"
    fraction = min(r / e for r, e in zip(running, enabled, strict=False) if e > 0)
    return totals, fraction, worst, None


def _threads() -> list[int]:
    return sorted(int(t) for t in os.listdir("/proc/self/task"))


class Counters:
    """Counters of every thread of this process; see the module docstring."""

    def __init__(self, llc_event: str = "generic") -> None:
        self.hw: _Set | None = None
        self.sw: _Set | None = None
        self.sw_kernel = False
        self.hw_status = "ok"
        self.sw_status = "ok"
        self.llc_status = "ok"
        self._before: tuple | None = None
        self._tids0: set[int] = set()
        self._cpu0 = 0.0
        tids = _threads()
        try:
            llc, self.llc_event = parse_llc_event(llc_event)
        except EventSpecError as e:
            llc, self.llc_event = None, f"invalid:{llc_event}"
            self.llc_status = str(e)
        hw_flags = FLAG_EXCLUDE_KERNEL | FLAG_EXCLUDE_HV
        try:
            self.hw = _open_set(HW_EVENTS + ((llc,) if llc else ()), tids, hw_flags)
        except OSError as e:
            if llc is None:
                self.hw_status = explain_errno(e.errno)
            else:
                # Find out whether the PMU is missing or only the LLC event is refused.
                try:
                    self.hw = _open_set(HW_EVENTS, tids, hw_flags)
                    self.llc_status = explain_errno(e.errno, f"LLC event {self.llc_event}")
                except OSError as e2:
                    self.hw_status = explain_errno(e2.errno)
        for flags, kernel in ((FLAG_EXCLUDE_HV, True), (FLAG_EXCLUDE_KERNEL | FLAG_EXCLUDE_HV, False)):
            try:
                self.sw = _open_set(SW_EVENTS, tids, flags)
                self.sw_kernel = kernel
                break
            except OSError as e:
                self.sw_status = explain_errno(e.errno, "software events", hardware=False)
                if e.errno != errno.EACCES:
                    break
        if self.sw is not None:
            self.sw_status = "ok"

    @property
    def grouping(self) -> str:
        return "none" if self.hw is None else ("group" if self.hw.grouped else "ungrouped (kernel refuses group reads)")

    @property
    def status(self) -> str:
        """``ok``, or every reason something is missing: hardware, then LLC, then software."""
        parts = [self.hw_status] if self.hw_status != "ok" else []
        if self.llc_status != "ok":
            parts.append(("partial: " if self.hw is not None else "") + self.llc_status)
        if self.sw_status != "ok":
            parts.append("software events " + self.sw_status)
        return "; ".join(parts) or "ok"

    def _sets(self) -> list[_Set]:
        return [s for s in (self.hw, self.sw) if s is not None]

    def _snapshot(self) -> tuple:
        hw = self.hw.read() if self.hw else None
        sw = self.sw.read() if self.sw else None
        # right after the task-clock read, so both ends of the cross-check are read together;
        # CLOCK_PROCESS_CPUTIME_ID is /proc/self/stat's utime+stime (dead threads included) at ns
        # resolution; a user-only task-clock (paranoid>=2) is compared with user time instead
        ru = resource.getrusage(resource.RUSAGE_SELF)
        cpu = time.process_time() if self.sw_kernel else ru.ru_utime
        return hw, sw, cpu, ru.ru_nvcsw + ru.ru_nivcsw

    def begin(self) -> None:
        """Close groups of exited threads, open groups on threads started since the last step,
        then read every thread."""
        tids = _threads()
        self._tids0 = set(tids)
        for s in self._sets():
            s.drop_exited(self._tids0)
            s.add_threads(tids)     # a failed open is kept in s.failed: the step reports it
        self._before = self._snapshot()
        self._cpu0 = time.process_time()

    def end(self) -> dict:
        """Counter deltas since :meth:`begin`, as the steps-table columns (:data:`SAMPLE_KEYS`)."""
        if self._before is None:
            raise RuntimeError("Counters.end() without begin()")
        after = self._snapshot()
        cpu1 = time.process_time()
        tids1 = set(_threads())
        (hw0, sw0, ref0, cs0), (hw1, sw1, ref1, cs1) = self._before, after
        self._before = None
        out: dict = dict.fromkeys(SAMPLE_KEYS)
        out["llc_event"] = self.llc_event
        out["cpu_seconds"] = cpu1 - self._cpu0
        status = self.status
        if hw0 is not None:
            counts, out["counter_time_fraction"], out["counter_scaling"], problem = scale_step(hw0, hw1)
            status = problem or status
            if counts is not None:
                out["cycles"], out["instructions"] = counts[0], counts[1]
                if len(counts) > 2:
                    out["llc_misses"] = counts[2]
        if sw0 is not None:     # software events are never multiplexed: raw deltas
            d = [sum(t[i][0] for t in sw1) - sum(t[i][0] for t in sw0) for i in range(len(SW_EVENTS))]
            out["task_clock_ns"], out["page_faults"] = d[0], d[1]
            out["context_switches"] = d[2] if self.sw_kernel else cs1 - cs0
        out["uncounted_threads"], part = partial.of_step(
            [(set(s.fds), s.failed) for s in self._sets()], self._tids0, tids1, out["task_clock_ns"], ref1 - ref0)
        out["counter_status"] = part if part and status == "ok" else "; ".join(x for x in (status, part) if x)
        for s in self._sets():      # the final counts of exited threads are read: close them
            s.drop_exited(tids1)
        return out

    def close(self) -> None:
        for s in (self.hw, self.sw):
            if s is not None:
                s.close()
        self.hw = self.sw = None

    def __enter__(self) -> Counters:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_counters(llc_event: str = "generic") -> Counters:
    """Open hardware + software counters on every thread of this process (never raises for
    missing counters: the samples carry null columns and ``counter_status`` says why)."""
    return Counters(llc_event)


def probe_events(llc_event: str = "generic") -> dict[str, str]:
    """Which events open on this node for this thread: event name -> ``ok`` or the reason."""
    out: dict[str, str] = {}
    try:
        llc, llc_name = parse_llc_event(llc_event)
    except EventSpecError as e:
        llc, llc_name = None, llc_event
        out[f"llc:{llc_event}"] = str(e)
    tid = os.gettid() if hasattr(os, "gettid") else 0
    fmt = FMT_TOTAL_TIME_ENABLED | FMT_TOTAL_TIME_RUNNING
    user_only = FLAG_EXCLUDE_KERNEL | FLAG_EXCLUDE_HV
    names = {"llc_misses": f"llc:{llc_name}", "task_clock_ns": "task-clock", "page_faults": "page-faults",
             "context_switches": "context-switches"}
    for ev in HW_EVENTS + ((llc,) if llc else ()):
        name = names.get(ev.name, ev.name)
        try:
            os.close(open_event(ev, tid, -1, fmt, user_only))
            out[name] = "ok"
        except OSError as e:
            out[name] = explain_errno(e.errno, "hardware counters" if ev.name != "llc_misses"
                                      else f"LLC event {llc_name}")
    for ev in SW_EVENTS:
        name = names[ev.name]
        try:
            os.close(open_event(ev, tid, -1, fmt, FLAG_EXCLUDE_HV))
            out[name] = "ok"
        except OSError as e:
            if e.errno != errno.EACCES:
                out[name] = explain_errno(e.errno, "software events", hardware=False)
                continue
            try:
                os.close(open_event(ev, tid, -1, fmt, user_only))
                out[name] = (f"ok (user-space only: perf_event_paranoid={paranoid()}"
                             + ("; counted from getrusage instead)" if ev.name == "context_switches" else ")"))
            except OSError as e2:
                out[name] = explain_errno(e2.errno, "software events", hardware=False)
    return out
