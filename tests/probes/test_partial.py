"""Which threads a step did not count, and why: the pure rules behind counter_status "partial"."""
from __future__ import annotations

import errno

from hrvs_ray.probes.partial import BORN, cause_of, cpu_mismatch, partial_status, uncounted


def test_each_thread_without_a_group_gets_its_cause():
    # 1, 2 counted; 3 found no fd; 4 failed otherwise; 5 born during the step; 6 exited before its open
    causes = uncounted(at_begin={1, 2, 3, 4, 6}, at_end={1, 2, 3, 4, 5}, counted={1, 2},
                       failed={3: errno.EMFILE, 4: errno.EACCES})
    assert causes == ["no file descriptor left (EMFILE)", "other: EACCES", BORN]
    assert uncounted({1}, {1}, {1}, {}) == []


def test_status_counts_threads_per_cause_and_the_cpu_gap():
    s = partial_status(["no file descriptor left (EMFILE)"] * 2 + [BORN], None)
    assert s == "partial: 3 threads uncounted (born during the step, no file descriptor left (EMFILE) x2)"
    assert partial_status([], None) is None
    gap = cpu_mismatch(0.144, 0.31)
    assert gap == "task-clock 0.144 s vs process CPU 0.310 s (-54%)"
    assert partial_status([], gap).startswith("partial: task-clock 0.144 s")


def test_cpu_gap_tolerance_is_five_percent_with_a_small_floor():
    assert cpu_mismatch(1.04, 1.0) is None and cpu_mismatch(0.94, 1.0) is not None
    assert cpu_mismatch(0.0105, 0.0100) is None            # 0.5 ms apart: read skew, not a loss
    assert cause_of(errno.ENFILE) == "no file descriptor left (ENFILE)"


def test_counters_off_give_null_not_zero():
    from hrvs_ray.probes.partial import of_step
    assert of_step([], {1}, {1}, None, 0.1) == (None, None)
    n, status = of_step([({1, 2}, {}), ({1}, {2: errno.EMFILE})], {1, 2}, {1, 2}, 100_000_000, 0.1)
    assert n == 1 and status == "partial: 1 thread uncounted (no file descriptor left (EMFILE))"
