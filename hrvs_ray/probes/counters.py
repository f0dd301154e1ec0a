"""Per-step hardware and software counters of the whole process, through ``perf_event_open``.

Usage (one step)::

    c = open_counters(llc_event="generic")     # once per cell; any time, even after torch started
    c.begin(); train_step(); sample = c.end()   # sample: the steps-table counter columns
    c.close()

Why ctypes and not a library: the Python perf bindings (``perf`` from the kernel tree,
``pyperf``-style wrappers, ``bcc``) are not on PyPI, pin to kernel headers, or need root; the
syscall needs one 112-byte struct and ``read()``. ctypes keeps the container free of
kernel-version-specific builds and lets every failure surface as an errno we can explain.

How the whole process is counted: one event group per *existing* thread (``/proc/self/task``,
``pid=tid``), each opened with ``inherit=1`` so threads those threads create later (torch's
OpenMP pool, data threads) are counted into them. Opening per thread means it does not matter
whether torch's pool already exists. Reads sum all threads. ``inherit`` also follows processes
forked after opening (e.g. DataLoader workers): keep data loading out of the timed step.

Groups: cycles, instructions and the LLC event are one group (``PERF_FORMAT_GROUP``) so they are
scheduled on the PMU together and their ratios (IPC, MPKI) stay consistent. Group reads with
``inherit=1`` are refused (EINVAL) by old kernels (before 4.3, which taught ``perf_read_group``
to sum inherited children); there we fall back to one fd per event, each scaled on its own, and
say so in :attr:`Counters.grouping`. Linux 6.18 here accepts the combination. Hardware counts
are scaled for multiplexing as ``value * time_enabled / time_running``; ``counter_scaling`` is
``time_running / time_enabled`` summed over threads for the step (1.0 = never multiplexed).

Privileges: hardware events use ``exclude_kernel=1, exclude_hv=1`` (user-space counting), which
``perf_event_paranoid=2`` allows for one's own process. Software events are opened counting
kernel time too when allowed (context switches happen in the kernel, so a user-only
context-switch count is always 0); under ``paranoid>=2`` without CAP_PERFMON they fall back to
user-only, and context switches then come from ``getrusage`` (all threads) instead.

LLC event choice (``llc_event``):

* ``generic`` -> ``PERF_TYPE_HARDWARE / PERF_COUNT_HW_CACHE_MISSES``. On Intel it maps to the
  architectural ``LONGEST_LAT_CACHE.MISS`` (LLC misses, demand + prefetch), present on every
  Intel core since Core 2. On AMD Zen it maps to an L2-level event, NOT L3: name a raw event
  for such clusters.
* ``ll-read`` -> ``PERF_TYPE_HW_CACHE`` LL / read / miss (offcore-response on Intel; absent on Zen).
* ``raw:0xNNNN`` -> ``PERF_TYPE_RAW`` with that config (e.g. Intel ``MEM_LOAD_RETIRED.L3_MISS`` =
  ``raw:0x20d1``: demand loads that missed L3, the paper's event).
* ``none`` -> not opened.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE, PERF_TYPE_HW_CACHE, PERF_TYPE_RAW = 0, 1, 3, 4
HW_CYCLES, HW_INSTRUCTIONS, HW_CACHE_MISSES = 0, 1, 3
SW_TASK_CLOCK, SW_PAGE_FAULTS, SW_CONTEXT_SWITCHES = 1, 2, 3
LL_READ_MISS = 2 | (0 << 8) | (1 << 16)           # PERF_COUNT_HW_CACHE_LL | OP_READ << 8 | RESULT_MISS << 16

FMT_TOTAL_TIME_ENABLED, FMT_TOTAL_TIME_RUNNING, FMT_GROUP = 1, 2, 8
FLAG_INHERIT, FLAG_EXCLUDE_KERNEL, FLAG_EXCLUDE_HV = 1 << 1, 1 << 5, 1 << 6
PERF_FLAG_FD_CLOEXEC = 1 << 3          # so processes Ray or torch spawn do not inherit our fds

_SYSCALL = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319, "s390x": 331}

SAMPLE_KEYS = ("cycles", "instructions", "llc_misses", "counter_status", "counter_scaling", "llc_event",
               "task_clock_ns", "page_faults", "context_switches", "cpu_seconds")


class _Attr(ctypes.Structure):
    """``struct perf_event_attr`` up to PERF_ATTR_SIZE_VER5 (112 bytes; every kernel >= 4.1 takes it)."""
    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("config", ctypes.c_uint64),
                ("sample_period", ctypes.c_uint64), ("sample_type", ctypes.c_uint64),
                ("read_format", ctypes.c_uint64), ("flags", ctypes.c_uint64),
                ("wakeup_events", ctypes.c_uint32), ("bp_type", ctypes.c_uint32),
                ("config1", ctypes.c_uint64), ("config2", ctypes.c_uint64),
                ("branch_sample_type", ctypes.c_uint64), ("sample_regs_user", ctypes.c_uint64),
                ("sample_stack_user", ctypes.c_uint32), ("clockid", ctypes.c_int32),
                ("sample_regs_intr", ctypes.c_uint64), ("aux_watermark", ctypes.c_uint32),
                ("sample_max_stack", ctypes.c_uint16), ("reserved", ctypes.c_uint16)]


@dataclass(frozen=True)
class Event:
    name: str
    type: int
    config: int


HW_EVENTS = (Event("cycles", PERF_TYPE_HARDWARE, HW_CYCLES), Event("instructions", PERF_TYPE_HARDWARE, HW_INSTRUCTIONS))
SW_EVENTS = (Event("task_clock_ns", PERF_TYPE_SOFTWARE, SW_TASK_CLOCK),
             Event("page_faults", PERF_TYPE_SOFTWARE, SW_PAGE_FAULTS),
             Event("context_switches", PERF_TYPE_SOFTWARE, SW_CONTEXT_SWITCHES))


class EventSpecError(ValueError):
    pass


def parse_llc_event(spec: str) -> tuple[Event | None, str]:
    """``generic`` | ``ll-read`` | ``raw:0xHEX`` | ``none`` -> (event or None, recorded name)."""
    s = spec.strip().lower()
    if s == "generic":
        return Event("llc_misses", PERF_TYPE_HARDWARE, HW_CACHE_MISSES), "generic:PERF_COUNT_HW_CACHE_MISSES"
    if s == "ll-read":
        return Event("llc_misses", PERF_TYPE_HW_CACHE, LL_READ_MISS), "generic:LL-read-miss"
    if s == "none":
        return None, "none"
    if s.startswith("raw:"):
        try:
            config = int(s[4:], 16)
        except ValueError:
            config = -1
        if 0 <= config < 1 << 64:
            return Event("llc_misses", PERF_TYPE_RAW, config), f"raw:{config:#x}"
    raise EventSpecError(f"invalid llc event {spec!r}: expected 'generic', 'll-read', 'raw:0xHEX' or 'none'")


def _paranoid() -> int | None:
    try:
        return int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        return None


def has_cpu_pmu() -> bool:
    """Whether the kernel registered a CPU PMU (x86 ``cpu``/hybrid ``cpu_core``, Arm, RISC-V, s390)."""
    try:
        names = os.listdir("/sys/bus/event_source/devices")
    except OSError:
        return False
    return any(n in ("cpu", "cpu_core", "cpu_atom", "cpum_cf") or n.startswith(("armv8", "arm_", "riscv"))
               for n in names)


def explain_errno(err: int, what: str = "hardware counters", hardware: bool = True) -> str:
    """An errno from perf_event_open, in words a user can act on."""
    name = errno.errorcode.get(err, str(err))
    if err == errno.ENOENT:
        if hardware and not has_cpu_pmu():
            return f"unsupported: no PMU ({name}) — this machine/VM exposes no hardware counters"
        return f"unsupported: {what} not provided by this CPU's PMU ({name}); name a raw event for this cluster"
    if err == errno.EACCES:
        return (f"forbidden: perf_event_paranoid={_paranoid()} ({name}) — ask your admin to set "
                f"kernel.perf_event_paranoid<=2 (or grant CAP_PERFMON)")
    if err in (errno.EPERM, errno.ENOSYS):
        return (f"unavailable: perf_event_open syscall not permitted ({name}) — blocked by the container's "
                f"seccomp profile or a kernel without perf events; allow perf_event_open in the container")
    if err == errno.EINVAL:
        return f"invalid event: {what} rejected by the kernel/PMU ({name}) — check the event code for this CPU"
    if err == errno.EOPNOTSUPP:
        return f"unsupported: {what} cannot be counted here ({name})"
    if err in (errno.EMFILE, errno.ENFILE):
        return f"unavailable: out of file descriptors ({name}) — raise ulimit -n"
    if err == errno.EBUSY:
        return f"unavailable: PMU busy ({name}) — another tool holds the counters exclusively"
    return f"unavailable: perf_event_open failed for {what} ({name}: {os.strerror(err)})"


def _open(ev: Event, tid: int, group_fd: int, read_format: int, flags: int) -> int:
    """perf_event_open for one thread; returns the fd or raises OSError(errno)."""
    nr = _SYSCALL.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"perf_event_open syscall number unknown on {platform.machine()}")
    attr = _Attr(type=ev.type, size=ctypes.sizeof(_Attr), config=ev.config, read_format=read_format, flags=flags)
    fd = _libc().syscall(nr, ctypes.byref(attr), tid, -1, group_fd, ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


@dataclass
class _Set:
    """Events opened as a group (or one fd each when the kernel refuses group+inherit), per thread."""
    events: tuple[Event, ...]
    grouped: bool
    fds: list[list[int]] = field(default_factory=list)      # per thread: one fd per event (leader first)

    def read(self) -> tuple[list[int], list[int], list[int]]:
        """Summed over threads, per event: raw value, time_enabled, time_running."""
        n = len(self.events)
        values, enabled, running = [0] * n, [0] * n, [0] * n
        for fds in self.fds:
            if self.grouped:
                data = struct.unpack(f"{3 + n}Q", os.read(fds[0], 8 * (3 + n)))
                for i in range(n):      # a group is scheduled as one: shared times
                    values[i] += data[3 + i]
                    enabled[i] += data[1]
                    running[i] += data[2]
            else:
                for i, fd in enumerate(fds):
                    v, e, r = struct.unpack("3Q", os.read(fd, 24))
                    values[i] += v
                    enabled[i] += e
                    running[i] += r
        return values, enabled, running

    def close(self) -> None:
        for fds in self.fds:
            for fd in fds:
                os.close(fd)
        self.fds = []


def _open_set(events: tuple[Event, ...], tids: list[int], flags: int) -> _Set:
    """Open ``events`` on every thread; grouped if the kernel allows group reads with inherit."""
    fmt = FMT_TOTAL_TIME_ENABLED | FMT_TOTAL_TIME_RUNNING
    for grouped in (True, False):
        s = _Set(events, grouped)
        try:
            for tid in tids:
                fds: list[int] = []
                try:
                    for ev in events:
                        leader = fds[0] if (grouped and fds) else -1
                        fds.append(_open(ev, tid, leader, fmt | (FMT_GROUP if grouped else 0), flags))
                except OSError as e:
                    for fd in fds:
                        os.close(fd)
                    if e.errno == errno.ESRCH:      # the thread exited meanwhile
                        continue
                    raise
                s.fds.append(fds)
            return s
        except OSError as e:
            s.close()
            if not (grouped and e.errno == errno.EINVAL and len(events) > 1):
                raise
    raise AssertionError("unreachable")


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
        tids = _threads()
        try:
            llc, self.llc_event = parse_llc_event(llc_event)
        except EventSpecError as e:
            llc, self.llc_event = None, f"invalid:{llc_event}"
            self.llc_status = str(e)
        hw_flags = FLAG_INHERIT | FLAG_EXCLUDE_KERNEL | FLAG_EXCLUDE_HV
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
        for flags, kernel in ((FLAG_INHERIT | FLAG_EXCLUDE_HV, True),
                              (FLAG_INHERIT | FLAG_EXCLUDE_KERNEL | FLAG_EXCLUDE_HV, False)):
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
        return "none" if self.hw is None else ("group" if self.hw.grouped else "ungrouped (kernel refuses group+inherit)")

    @property
    def status(self) -> str:
        """``ok``, or every reason something is missing: hardware, then LLC, then software."""
        parts = [self.hw_status] if self.hw_status != "ok" else []
        if self.llc_status != "ok":
            parts.append(("partial: " if self.hw is not None else "") + self.llc_status)
        if self.sw_status != "ok":
            parts.append("software events " + self.sw_status)
        return "; ".join(parts) or "ok"

    def _snapshot(self) -> tuple:
        hw = self.hw.read() if self.hw else None
        sw = self.sw.read() if self.sw else None
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return hw, sw, time.process_time(), ru.ru_nvcsw + ru.ru_nivcsw

    def begin(self) -> None:
        self._before = self._snapshot()

    def end(self) -> dict:
        """Counter deltas since :meth:`begin`, as the steps-table columns (:data:`SAMPLE_KEYS`)."""
        if self._before is None:
            raise RuntimeError("Counters.end() without begin()")
        after = self._snapshot()
        (hw0, sw0, cpu0, cs0), (hw1, sw1, cpu1, cs1) = self._before, after
        self._before = None
        out: dict = dict.fromkeys(SAMPLE_KEYS)
        out["llc_event"] = self.llc_event
        out["cpu_seconds"] = cpu1 - cpu0
        status = self.status
        if hw0 is not None:
            de = [b - a for a, b in zip(hw0[1], hw1[1])]
            dr = [b - a for a, b in zip(hw0[2], hw1[2])]
            if all(r > 0 for r in dr):
                scaled = [round((b - a) * e / r) for a, b, e, r in zip(hw0[0], hw1[0], de, dr)]
                out["cycles"], out["instructions"] = scaled[0], scaled[1]
                if len(scaled) > 2:
                    out["llc_misses"] = scaled[2]
                out["counter_scaling"] = min(r / e for e, r in zip(de, dr))
            elif any(e > 0 for e in de):
                status = "not counted: counters were multiplexed out for the whole step (time_running=0)"
                out["counter_scaling"] = 0.0
            else:
                status = "not counted: no thread ran while counting (time_enabled=0)"
        out["counter_status"] = status
        if sw0 is not None:
            d = [b - a for a, b in zip(sw0[0], sw1[0])]
            out["task_clock_ns"], out["page_faults"] = d[0], d[1]
            out["context_switches"] = d[2] if self.sw_kernel else cs1 - cs0
        return out

    def close(self) -> None:
        for s in (self.hw, self.sw):
            if s is not None:
                s.close()
        self.hw = self.sw = None

    def __enter__(self) -> "Counters":
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
            os.close(_open(ev, tid, -1, fmt, user_only))
            out[name] = "ok"
        except OSError as e:
            out[name] = explain_errno(e.errno, "hardware counters" if ev.name != "llc_misses"
                                      else f"LLC event {llc_name}")
    for ev in SW_EVENTS:
        name = names[ev.name]
        try:
            os.close(_open(ev, tid, -1, fmt, FLAG_EXCLUDE_HV))
            out[name] = "ok"
        except OSError as e:
            if e.errno != errno.EACCES:
                out[name] = explain_errno(e.errno, "software events", hardware=False)
                continue
            try:
                os.close(_open(ev, tid, -1, fmt, user_only))
                out[name] = (f"ok (user-space only: perf_event_paranoid={_paranoid()}"
                             + ("; counted from getrusage instead)" if ev.name == "context_switches" else ")"))
            except OSError as e2:
                out[name] = explain_errno(e2.errno, "software events", hardware=False)
    return out
