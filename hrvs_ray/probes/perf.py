"""``perf_event_open`` itself: the attribute struct, one open, and its errors in words.

Pure ctypes (no torch). :mod:`.counters` builds the per-thread event sets on top of this.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
from pathlib import Path

from .events import Event
from .syscalls import libc, syscall_number

FMT_TOTAL_TIME_ENABLED, FMT_TOTAL_TIME_RUNNING, FMT_GROUP = 1, 2, 8
FLAG_INHERIT, FLAG_EXCLUDE_KERNEL, FLAG_EXCLUDE_HV = 1 << 1, 1 << 5, 1 << 6
PERF_FLAG_FD_CLOEXEC = 1 << 3          # so processes Ray or torch spawn do not inherit our fds


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


def paranoid() -> int | None:
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
        return (f"forbidden: perf_event_paranoid={paranoid()} ({name}) — ask your admin to set "
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


def open_event(ev: Event, tid: int, group_fd: int, read_format: int, flags: int) -> int:
    """perf_event_open for one thread; returns the fd or raises OSError(errno)."""
    nr = syscall_number("perf_event_open")
    if nr is None:
        raise OSError(errno.ENOSYS, f"perf_event_open syscall number unknown on {platform.machine()}")
    attr = _Attr(type=ev.type, size=ctypes.sizeof(_Attr), config=ev.config, read_format=read_format, flags=flags)
    fd = libc().syscall(nr, ctypes.byref(attr), tid, -1, group_fd, ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd
