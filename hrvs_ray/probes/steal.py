"""Steal time: CPU time the hypervisor gave to another guest while this one wanted to run.

On a VM the host can take a vCPU away mid-step; the step's wall time then grows with no change
in the work. ``/proc/stat`` counts it per CPU (the 8th value of each ``cpuN`` line, in
``USER_HZ`` ticks). A step's ``steal_seconds`` is the growth of that count over the step, summed
over the CPUs the cell may run on; :mod:`hrvs_ray.metrics` flags a step whose steal exceeds
5 % of its CPU time (seconds x cores). No torch: read before and after each step.
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
