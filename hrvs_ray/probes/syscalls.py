"""One libc handle and the syscall numbers the probes call through ``ctypes``.

``perf_event_open``, ``set_mempolicy`` and ``get_mempolicy`` have no libc wrapper (glibc leaves
them to libnuma / perf), so they go through ``syscall(2)`` with the architecture's number.
The numbers come from the kernel's syscall tables; asm-generic covers aarch64 and riscv64.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform

_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"perf_event_open": 298, "set_mempolicy": 238, "get_mempolicy": 239},
    "aarch64": {"perf_event_open": 241, "set_mempolicy": 237, "get_mempolicy": 236},
    "riscv64": {"perf_event_open": 241, "set_mempolicy": 237, "get_mempolicy": 236},
    "ppc64le": {"perf_event_open": 319, "set_mempolicy": 261, "get_mempolicy": 260},
    "s390x": {"perf_event_open": 331, "set_mempolicy": 270, "get_mempolicy": 269},
}

_LIBC: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The process's libc (loaded once), with ``errno`` kept for :func:`ctypes.get_errno`."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def syscall_number(name: str) -> int | None:
    """This machine's number for ``name``; None on an architecture not in the table."""
    return _NUMBERS.get(platform.machine(), {}).get(name)


def errno_text(e: int) -> str:
    """``EPERM (Operation not permitted)``."""
    return f"{errno.errorcode.get(e, e)} ({os.strerror(e)})"
