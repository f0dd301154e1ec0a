"""Steal time: CPU time the hypervisor gave to another guest while this one wanted to run.

On a VM the host can take a vCPU away mid-step; the step's wall time then grows with no change
in the work. ``/proc/stat`` counts it per CPU (the 8th value of each ``cpuN`` line, in
``USER_HZ`` ticks). A step's ``steal_seconds`` is the growth of that count over the step, summed
over the CPUs the cell may run on; :mod:`hrvs_ray.metrics` flags a step whose steal exceeds
5 % of its CPU time (seconds x cores). No torch: read before and after each step.

The same lines give the time other processes took on those CPUs: their busy ticks (user, nice,
system, irq, softirq; guest time is already inside user) less this process's own CPU time over
the same interval. A step (or a ceiling measurement) beside another process's work measures
shared CPUs; ``other_cpu_seconds`` says how much. Ticks are 10 ms, so a few hundredths of a
second per CPU are resolution, not a neighbour.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

STEAL_FIELD = 8        # cpuN user nice system idle iowait irq softirq steal ...: 1-based after the name


def parse_steal_ticks(stat_text: str, cpus: Iterable[int] | None = None) -> int | None:
    """Summed steal ticks of ``cpus`` (the aggregate ``cpu`` line when None) in /proc/stat text;
    None when the kernel reports no steal column (before 2.6.11) or none of the CPUs is listed."""
    want = None if cpus is None else {f"cpu{c}" for c in cpus}
    total, seen = 0, False
    for line in stat_text.splitlines():
        f = line.split()
        if not f or not f[0].startswith("cpu") or len(f) <= STEAL_FIELD:
            continue
        if (want is None and f[0] == "cpu") or (want is not None and f[0] in want):
            total += int(f[STEAL_FIELD])
            seen = True
    return total if seen else None


BUSY_FIELDS = (1, 2, 3, 6, 7)   # user nice system irq softirq (idle 4, iowait 5, steal 8)


def parse_cpu_ticks(stat_text: str, cpus: Iterable[int]) -> tuple[int, int | None] | None:
    """(busy ticks, steal ticks or None) summed over ``cpus`` in /proc/stat text; None when
    none of them is listed."""
    want = {f"cpu{c}" for c in cpus}
    busy, steal, seen, has_steal = 0, 0, False, True
    for line in stat_text.splitlines():
        f = line.split()
        if not f or f[0] not in want or len(f) <= max(BUSY_FIELDS):
            continue
        busy += sum(int(f[i]) for i in BUSY_FIELDS)
        if len(f) > STEAL_FIELD:
            steal += int(f[STEAL_FIELD])
        else:
            has_steal = False
        seen = True
    return (busy, steal if has_steal else None) if seen else None


def read_cpu_ticks(cpus: Iterable[int], root: Path = Path("/")) -> tuple[int, int | None] | None:
    """Cumulative (busy, steal) ticks of ``cpus`` now; None when /proc/stat is unreadable."""
    try:
        return parse_cpu_ticks((root / "proc/stat").read_text(), list(cpus))
    except OSError:
        return None


def cpu_use(before: tuple[int, int | None] | None, after: tuple[int, int | None] | None,
            own_cpu_seconds: float) -> dict[str, float | None]:
    """``steal_seconds`` and ``other_cpu_seconds`` between two :func:`read_cpu_ticks`, given the
    CPU time this process used meanwhile (``time.process_time()``, all its threads)."""
    if before is None or after is None:
        return {"steal_seconds": None, "other_cpu_seconds": None}
    hz = ticks_per_second()
    steal = None if before[1] is None or after[1] is None else (after[1] - before[1]) / hz
    # clipped at 0: our own time is exact, the ticks are sampled
    return {"steal_seconds": steal, "other_cpu_seconds": max(0.0, (after[0] - before[0]) / hz - own_cpu_seconds)}


def ticks_per_second() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


def read_steal_seconds(cpus: Iterable[int] | None = None, root: Path = Path("/")) -> float | None:
    """Cumulative steal seconds of ``cpus`` now (None when unreadable): take two and subtract."""
    try:
        text = (root / "proc/stat").read_text()
    except OSError:
        return None
    ticks = parse_steal_ticks(text, cpus)
    return None if ticks is None else ticks / ticks_per_second()
