"""When a step's counters cover less than the whole process, and why: pure functions.

:mod:`.counters` opens one group per thread at each step's start. A thread is *uncounted* in a
step when it had no group in it: its open failed (no file descriptor left, or another errno), or
it was born during the step (groups are opened at ``begin()`` only: no ``inherit``, see
:mod:`.counters`). A thread born *and gone* within one step is seen by no snapshot at all; the
only trace it leaves is CPU time the process spent that no group counted, so each step's summed
task-clock is also checked against the process's own CPU time.
"""
from __future__ import annotations

import errno as _errno
from collections import Counter

BORN = "born during the step"
# Allowed gap between summed task-clock and process CPU time: 5 % (the bound), and at least
# 1 ms because the two are read one after the other at each end of the step (skew, not a loss).
CPU_TOLERANCE, CPU_FLOOR_S = 0.05, 0.001


def cause_of(err: int | None) -> str:
    """A failed open's errno as the cause printed in ``counter_status``."""
    if err in (_errno.EMFILE, _errno.ENFILE):
        return f"no file descriptor left ({_errno.errorcode[err]})"
    if err is None:
        return "other: no group, no error recorded"
    return f"other: {_errno.errorcode.get(err, str(err))}"


def uncounted(at_begin: set[int], at_end: set[int], counted: set[int], failed: dict[int, int]) -> list[str]:
    """One cause per thread of the process that had no group during the step.

    ``at_begin``/``at_end``: the process's threads at the step's two snapshots; ``counted``:
    threads with a group in every open event set; ``failed``: tid -> errno of its failed open.
    A thread seen at begin without a group and without a recorded failure exited before its
    open (ESRCH) and is not counted as missing unless it is still alive at the end.
    """
    causes = []
    for tid in sorted(at_begin | at_end):
        if tid in counted:
            continue
        if tid not in at_begin:
            causes.append(BORN)
        elif tid in failed:
            causes.append(cause_of(failed[tid]))
        elif tid in at_end:
            causes.append(cause_of(None))
    return causes


def cpu_mismatch(task_clock_s: float, cpu_s: float) -> str | None:
    """The gap between summed task-clock and process CPU time, when beyond tolerance."""
    gap = task_clock_s - cpu_s
    if abs(gap) <= max(CPU_TOLERANCE * cpu_s, CPU_FLOOR_S):
        return None
    return (f"task-clock {task_clock_s:.3f} s vs process CPU {cpu_s:.3f} s ({gap / cpu_s:+.0%})"
            if cpu_s > 0 else f"task-clock {task_clock_s:.3f} s vs process CPU 0 s")


def partial_status(causes: list[str], mismatch: str | None) -> str | None:
    """``partial: N threads uncounted (cause, ...)`` and/or the CPU-time gap; None when whole."""
    parts = []
    if causes:
        n = len(causes)
        why = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(Counter(causes).items()))
        parts.append(f"partial: {n} thread{'s' if n > 1 else ''} uncounted ({why})")
    if mismatch:
        parts.append(f"partial: {mismatch} — a thread born and gone within the step, or one without a group")
    return "; ".join(parts) or None


def of_step(sets: list[tuple[set[int], dict[int, int]]], at_begin: set[int], at_end: set[int],
            task_clock_ns: int | None, cpu_s: float) -> tuple[int | None, str | None]:
    """(uncounted_threads, partial status or None) of one step. ``sets``: per open event set,
    (threads with a group, tid -> errno of a failed open); none open: counters are off (None)."""
    if not sets:
        return None, None
    counted = set.intersection(*(tids for tids, _ in sets))
    failed = {t: e for _, f in sets for t, e in f.items()}
    causes = uncounted(at_begin, at_end, counted, failed)
    gap = cpu_mismatch(task_clock_ns / 1e9, cpu_s) if task_clock_ns is not None else None
    return len(causes), partial_status(causes, gap)
