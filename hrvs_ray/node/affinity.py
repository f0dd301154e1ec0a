"""Apply a scope's placement to this process: thread count, CPU affinity, NUMA memory binding.

Call :func:`apply_placement` BEFORE ``import torch`` in the cell's process:
torch reads ``OMP_NUM_THREADS`` when it starts, and its OpenMP workers inherit the CPU mask
of the thread that creates them. Ray and containers pass the host's ``OMP_NUM_THREADS``
through, so we overwrite it rather than trusting what is inherited. This module must not
import torch (only :func:`check_torch_threads` does, lazily).

Memory binding uses ``set_mempolicy(MPOL_BIND)`` through ``ctypes`` (no libnuma needed in the
image). Containers often block it (Docker's default seccomp profile allows it only with
CAP_SYS_NICE): the cell still runs and the recorded ``numa_binding`` says why it is unbound.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InternalError
from ..probes.syscalls import errno_text, libc, syscall_number
from .topology_types import ScopePlacement

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

MPOL_DEFAULT, MPOL_BIND = 0, 2


class PlacementError(InternalError):
    """The OS refused the CPU set (e.g. CPUs outside this container's cpuset)."""


@dataclass(frozen=True)
class AppliedPlacement:
    cpus: tuple[int, ...]          # os.sched_getaffinity after applying
    threads: int                   # the thread count put in OMP/MKL/OPENBLAS_NUM_THREADS
    numa_binding: str              # "bind:0,1" | "not needed: ..." | "not bound: ..."
    warnings: tuple[str, ...] = ()  # torch imported too early, threads not pinned


def _nodemask(nodes: tuple[int, ...]) -> tuple[ctypes.Array, int]:
    bits = ctypes.sizeof(ctypes.c_ulong) * 8
    words = max(nodes) // bits + 1
    mask = (ctypes.c_ulong * words)()
    for n in nodes:
        mask[n // bits] |= 1 << (n % bits)
    # The kernel decrements maxnode before use (a historic off-by-one that libnuma also pads for).
    return mask, words * bits + 1


def bind_memory(nodes: tuple[int, ...]) -> str:
    """``set_mempolicy(MPOL_BIND, nodes)`` for this thread and threads it creates later.

    Returns ``"bind:<nodes>"`` read back with ``get_mempolicy``, or ``"not bound: <why>"``.
    An empty ``nodes`` resets to the default (local) policy and returns ``"default"``.
    """
    set_nr, get_nr = syscall_number("set_mempolicy"), syscall_number("get_mempolicy")
    if set_nr is None or get_nr is None:
        return f"not bound: set_mempolicy syscall number unknown on {platform.machine()}"
    if nodes:
        mask, maxnode = _nodemask(nodes)
        rc = libc().syscall(set_nr, MPOL_BIND, mask, ctypes.c_ulong(maxnode))
    else:
        rc = libc().syscall(set_nr, MPOL_DEFAULT, None, ctypes.c_ulong(0))
    if rc != 0:
        return f"not bound: set_mempolicy failed: {errno_text(ctypes.get_errno())}"
    # Read it back. get_mempolicy wants room for every possible node: 4096 covers MAX_NUMNODES.
    bits = ctypes.sizeof(ctypes.c_ulong) * 8
    mode, back = ctypes.c_int(-1), (ctypes.c_ulong * (4096 // bits))()
    if libc().syscall(get_nr, ctypes.byref(mode), back, ctypes.c_ulong(4096), None, ctypes.c_ulong(0)) != 0:
        return f"bind:{','.join(map(str, nodes))} (get_mempolicy failed: {errno_text(ctypes.get_errno())})"
    if mode.value == MPOL_DEFAULT:
        return "default"
    got = [i * bits + b for i, w in enumerate(back) for b in range(bits) if w >> b & 1]
    if mode.value != MPOL_BIND or tuple(got) != tuple(sorted(nodes)):
        return f"not bound: kernel reports mode {mode.value} nodes {got}"
    return "bind:" + ",".join(map(str, got))


def _numa_node_count(root: Path = Path("/")) -> int:
    return sum(1 for p in (root / "sys/devices/system/node").glob("node[0-9]*") if p.is_dir())


def apply_placement(p: ScopePlacement) -> AppliedPlacement:
    """Set thread env vars, pin every thread of this process to ``p.cpus``, bind memory.

    All existing threads are pinned (not just the caller) because Ray starts its own threads
    before the cell's code runs, and whichever thread later starts torch's pool passes its
    mask on to the workers.
    """
    warnings = []           # the placement's numa_warning stays in the placement (the cell's process records it)
    if "torch" in sys.modules:
        warnings.append("torch was imported before apply_placement: a thread pool created earlier keeps "
                        "its old thread count and CPU mask")
    for var in THREAD_ENV:
        os.environ[var] = str(p.threads)
    cpus = set(p.cpus)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as e:
        raise PlacementError(f"cannot pin to CPUs {sorted(cpus)} for scope {p.scope}: {e}; allowed here: "
                             f"{sorted(os.sched_getaffinity(0))}") from None
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError as e:       # a thread that just exited (ESRCH) is fine
            if e.errno != errno.ESRCH:
                warnings.append(f"thread {tid} not pinned: {e}")

    if not p.numa_nodes:
        # the placement's own reason first (contradictory NUMA data, nodes outside cpuset.mems)
        binding = f"not bound: {p.numa_warning}" if p.numa_warning else \
            "not bound: no NUMA node is known for these CPUs"
    elif (count := _numa_node_count()) <= 1:
        binding = f"not needed: {count} NUMA node"
    else:
        binding = bind_memory(p.numa_nodes)
    return AppliedPlacement(cpus=tuple(sorted(os.sched_getaffinity(0))), threads=p.threads,
                            numa_binding=binding, warnings=tuple(warnings))


def check_torch_threads(expected: int) -> int:
    """Call right after ``import torch; torch.set_num_threads(n)``: torch's own thread count."""
    import torch  # noqa: PLC0415 - lazily, so importing this module never loads torch
    got = torch.get_num_threads()
    return got


def thread_masks() -> dict[int, tuple[str, tuple[int, ...]]]:
    """Every thread of this process: tid -> (its name, the CPUs it may run on), read from
    ``/proc/self/task/*/{comm,status}`` (``Cpus_allowed_list``). A thread that exits while
    being read is left out."""
    from .sysfs import parse_cpulist

    out = {}
    for tid in os.listdir("/proc/self/task"):
        task = Path("/proc/self/task") / tid
        try:
            name = (task / "comm").read_text().strip()
            status = (task / "status").read_text()
        except OSError:
            continue
        line = next((ln for ln in status.splitlines() if ln.startswith("Cpus_allowed_list:")), None)
        if line is not None:
            out[int(tid)] = (name, parse_cpulist(line.split(":", 1)[1].strip()))
    return out


@dataclass(frozen=True)
class ThreadCheck:
    """What :func:`pin_stragglers` found and did: threads seen, the ones outside the set
    (``name:tid``), and those it could not move (ended threads do not count)."""
    threads: int
    outside: tuple[str, ...]
    not_pinned: tuple[str, ...]

    def text(self) -> str:
        if not self.outside:
            return f"all {self.threads} threads inside the CPU set"
        moved = len(self.outside) - len(self.not_pinned)
        tail = f"; could not move {', '.join(self.not_pinned)}" if self.not_pinned else ""
        return (f"{len(self.outside)} of {self.threads} threads were outside the CPU set "
                f"({', '.join(self.outside)}); {moved} re-pinned{tail}")


def pin_stragglers(cpus: tuple[int, ...] | list[int]) -> ThreadCheck:
    """Check that every thread of this process may run only on ``cpus``, and pin those that
    may run elsewhere: libraries that start threads after the placement (gloo's, for one)
    or whose threads were created by a thread that never got the mask."""
    want = tuple(sorted(cpus))
    seen = thread_masks()
    outside, failed = [], []
    for tid, (name, allowed) in sorted(seen.items()):
        if tuple(sorted(allowed)) == want:
            continue
        outside.append(f"{name}:{tid}")
        try:
            os.sched_setaffinity(tid, set(want))
        except OSError as e:
            if e.errno != errno.ESRCH:
                failed.append(f"{name}:{tid} ({e.strerror})")
    return ThreadCheck(len(seen), tuple(outside), tuple(failed))
