"""perf_event counters, for real: software events everywhere, hardware events where a PMU exists."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from hrvs_ray.probes.counters import SAMPLE_KEYS, explain_errno, has_cpu_pmu, open_counters, probe_events, scale_step
from hrvs_ray.store import STEPS_SCHEMA
from tests.helpers import REPO

BUF = b"\x01" * (16 * 1024 * 1024)


def _hash_work(cpu_s: float, spent: list) -> None:
    """Hash for `cpu_s` seconds of this thread's CPU time, whatever the host's speed: a fixed
    number of rounds took 0.099 s on a fast host and failed a 0.1 s floor."""
    t0 = time.thread_time()
    while time.thread_time() - t0 < cpu_s:
        hashlib.sha256(BUF).digest()          # releases the GIL for big buffers: threads run in parallel
    spent.append(time.thread_time() - t0)


def _matmul_for(a, cpu_s: float) -> None:
    """Multiply until the process has spent `cpu_s` of CPU time (all threads), not a fixed count."""
    t0 = time.process_time()
    while time.process_time() - t0 < cpu_s:
        a @ a


def _join_gone(threads: list[threading.Thread]) -> None:
    """Join, then wait until the OS threads have left /proc/self/task (join returns a moment
    before the kernel thread exits)."""
    for t in threads:
        t.join()
    tids = {str(t.native_id) for t in threads}
    deadline = time.monotonic() + 10
    while tids & set(os.listdir("/proc/self/task")) and time.monotonic() < deadline:
        time.sleep(0.001)


def test_sample_keys_are_steps_columns():
    with open_counters() as c:
        c.begin()
        sample = c.end()
    assert tuple(sample) == SAMPLE_KEYS
    assert set(SAMPLE_KEYS) <= set(STEPS_SCHEMA.names)


def test_task_clock_agrees_with_process_cpu_time_over_matmul():
    a = np.random.default_rng(0).random((700, 700))
    a @ a                                      # BLAS starts its worker threads before the step
    with open_counters() as c:
        c.begin()
        _matmul_for(a, 0.3)
        s = c.end()
    assert s["task_clock_ns"] is not None, s["counter_status"]
    assert s["cpu_seconds"] > 0.2
    assert s["task_clock_ns"] / 1e9 == pytest.approx(s["cpu_seconds"], rel=0.12)
    assert s["page_faults"] >= 0 and s["context_switches"] >= 0


def _gated_workers(n: int, spent: list[float]) -> tuple[threading.Event, list[threading.Thread]]:
    go = threading.Event()

    def work() -> None:
        go.wait()
        _hash_work(0.1, spent)
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    return go, threads


def test_threads_started_after_open_are_counted_from_the_next_step_each_in_its_own_group():
    spent: list[float] = []
    with open_counters() as c:
        before = len(c.sw.fds)
        go, threads = _gated_workers(2, spent)      # torch's pool: started after open, before the step
        c.begin()
        assert len(c.sw.fds) == before + 2          # one group per new thread: scaled on its own
        go.set()
        for t in threads:
            t.join()
        s = c.end()
    worker_s = sum(spent)
    assert worker_s >= 0.2                      # by construction: 2 threads x 0.1 s
    # task-clock covers the workers' own CPU time (plus a little of the main thread's).
    assert s["task_clock_ns"] / 1e9 >= 0.9 * worker_s
    assert s["task_clock_ns"] / 1e9 == pytest.approx(s["cpu_seconds"], rel=0.12)


def test_a_thread_started_inside_a_step_counts_from_the_next_step():
    # no inherit (it would fold a child's counts and times into its parent's group): a thread
    # born mid-step has no group yet; the training step starts none (torch's pools persist)
    spent: list[float] = []
    with open_counters() as c:
        c.begin()
        t = threading.Thread(target=_hash_work, args=(0.1, spent))
        t.start()
        _join_gone([t])
        s = c.end()
    assert sum(spent) >= 0.1 and s["task_clock_ns"] / 1e9 < 0.5 * sum(spent)
    # born and gone within the step: no snapshot saw it, the CPU-time cross-check does
    assert s["uncounted_threads"] == 0
    assert "partial: task-clock" in s["counter_status"] and "born and gone" in s["counter_status"]


def test_a_thread_alive_at_the_end_of_the_step_it_was_born_in_is_reported_then_counted():
    spent: list[float] = []
    stop = threading.Event()

    def work() -> None:
        _hash_work(0.1, spent)
        stop.wait()
    with open_counters() as c:
        c.begin()
        t = threading.Thread(target=work)
        t.start()
        while not spent:
            time.sleep(0.01)
        s = c.end()
        assert s["uncounted_threads"] == 1
        assert "partial: 1 thread uncounted (born during the step)" in s["counter_status"]
        c.begin()                                   # the next step gives it a group
        s2 = c.end()
        stop.set()
        t.join()
    assert s2["uncounted_threads"] == 0 and "uncounted" not in s2["counter_status"]


def test_groups_of_exited_threads_are_closed_after_their_last_read():
    spent: list[float] = []
    with open_counters() as c:
        go, threads = _gated_workers(2, spent)
        c.begin()
        workers = {t.native_id for t in threads}
        assert workers <= set(c.sw.fds)
        go.set()
        _join_gone(threads)
        s = c.end()                                 # their final counts are read here...
        assert not workers & set(c.sw.fds)          # ...and their groups closed
        open_fds = len(os.listdir("/proc/self/fd"))
        c.begin()
        c.end()
        assert len(os.listdir("/proc/self/fd")) == open_fds
    assert s["task_clock_ns"] / 1e9 >= 0.9 * sum(spent) and s["uncounted_threads"] == 0


def test_out_of_file_descriptors_at_begin_is_partial_not_ok():
    """A real RLIMIT_NOFILE, lowered so that 4 new threads find fds for some groups only."""
    code = textwrap.dedent("""
        import json, os, resource, threading
        from tests.probes.test_counters import _gated_workers
        from hrvs_ray.probes.counters import open_counters
        c = open_counters()
        spent = []
        go, threads = _gated_workers(4, spent)
        used = {int(f) for f in os.listdir("/proc/self/fd")}
        per_thread = len(c.sw.events) + (len(c.hw.events) if c.hw else 0)
        limit, free = 0, 0                  # room for the groups of 2 threads out of 4
        while free < 2 * per_thread:
            free += limit not in used
            limit += 1
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        c.begin()
        go.set()
        for t in threads:
            t.join()
        s = c.end()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print(json.dumps(dict(s, worker_s=sum(spent))))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert 1 <= s["uncounted_threads"] <= 4, s
    assert "threads uncounted (no file descriptor left (EMFILE)" in s["counter_status"], s["counter_status"]
    assert s["counter_status"].startswith(("partial:", "unsupported", "forbidden"))
    # the uncounted workers' CPU time is missing from task-clock, and the cross-check says so
    assert s["task_clock_ns"] / 1e9 < 0.9 * s["cpu_seconds"]
    assert "partial: task-clock" in s["counter_status"]


def test_threads_existing_before_open_are_counted():
    go, spent = threading.Event(), []

    def waiter():
        go.wait()
        _hash_work(0.1, spent)
    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    with open_counters() as c:
        c.begin()
        go.set()
        for t in threads:
            t.join()
        s = c.end()
    assert sum(spent) >= 0.2                        # by construction: 2 threads x 0.1 s
    assert s["task_clock_ns"] / 1e9 >= 0.9 * sum(spent)


@pytest.mark.skipif(has_cpu_pmu(), reason="this machine has a PMU")
def test_no_pmu_gives_null_hardware_columns_and_a_reason():
    with open_counters("generic") as c:
        c.begin()
        sum(range(10000))
        s = c.end()
    assert s["counter_status"] == "unsupported: no PMU (ENOENT) — this machine/VM exposes no hardware counters"
    assert s["cycles"] is s["instructions"] is s["llc_misses"] is s["counter_scaling"] is None
    assert s["counter_time_fraction"] is None
    assert s["llc_event"] == "generic:PERF_COUNT_HW_CACHE_MISSES"
    assert s["task_clock_ns"] > 0
    ev = probe_events()
    assert ev["cycles"].startswith("unsupported: no PMU") and ev["task-clock"].startswith("ok")


@pytest.mark.skipif(not has_cpu_pmu(), reason="no PMU on this machine (VM without hardware counters)")
def test_hardware_counters_where_a_pmu_exists():
    a = np.random.default_rng(0).random((500, 500))
    with open_counters("generic") as c:
        c.begin()
        for _ in range(10):
            a @ a
        s = c.end()
    assert s["counter_status"] in ("ok",) or s["counter_status"].startswith("partial"), s["counter_status"]
    assert s["cycles"] > 1e8 and s["instructions"] > 1e8
    assert 0 < s["counter_scaling"] <= s["counter_time_fraction"] <= 1.0
    assert c.grouping == "group"


def test_invalid_raw_event_is_a_status_not_a_crash():
    with open_counters("raw:not-hex") as c:
        c.begin()
        s = c.end()
    assert "invalid llc event 'raw:not-hex'" in s["counter_status"]
    assert s["llc_misses"] is None and s["task_clock_ns"] is not None
    with open_counters("raw:0x20d1") as c:
        c.begin()
        s = c.end()
    assert s["llc_event"] == "raw:0x20d1"
    if not has_cpu_pmu():
        assert s["counter_status"].startswith("unsupported: no PMU")
    with open_counters("none") as c:
        c.begin()
        s = c.end()
    assert s["llc_event"] == "none" and s["llc_misses"] is None


def test_reasons_are_actionable():
    assert "perf_event_paranoid<=2" in explain_errno(errno.EACCES)
    assert "seccomp" in explain_errno(errno.EPERM) and "seccomp" in explain_errno(errno.ENOSYS)
    assert "software events not provided" in explain_errno(errno.ENOENT, "software events", hardware=False)


@pytest.mark.skipif(not has_cpu_pmu(), reason="no PMU on this machine (VM without hardware counters): an event "
                                              "the PMU lacks cannot be told from a missing PMU here")
def test_enoent_with_a_pmu_asks_for_a_raw_event():
    assert "name a raw event for this cluster" in explain_errno(errno.ENOENT, "LLC event raw:0x1")


@pytest.mark.skipif(has_cpu_pmu(), reason="this machine has a PMU")
def test_enoent_without_a_pmu_says_there_is_none():
    assert explain_errno(errno.ENOENT, "LLC event raw:0x1") == \
        "unsupported: no PMU (ENOENT) — this machine/VM exposes no hardware counters"


def test_multiplexed_threads_are_scaled_before_summing():
    # per thread, per event: (value, time_enabled, time_running); two events, grouped times
    before = [[(0, 0, 0), (0, 0, 0)], [(0, 0, 0), (0, 0, 0)], [(7, 5, 5), (7, 5, 5)]]
    after = [[(100, 10, 5), (10, 10, 5)],      # counted half of its time: x2
             [(300, 10, 10), (30, 10, 10)],    # never multiplexed
             [(7, 5, 5), (7, 5, 5)]]           # did not run in the step
    counts, fraction, worst, problem = scale_step(before, after)
    assert counts == [500, 50] and problem is None   # scaling the sums would give 400 x 20/15 = 533
    assert fraction == pytest.approx(15 / 20) and worst == pytest.approx(0.5)


def test_a_thread_never_counted_lowers_the_time_fraction():
    before = [[(0, 0, 0)], [(0, 0, 0)]]
    counts, fraction, worst, problem = scale_step(before, [[(100, 10, 10)], [(0, 30, 0)]])
    assert counts == [100] and fraction == pytest.approx(10 / 40) and worst == 0.0 and problem is None
    counts, fraction, _, problem = scale_step(before, [[(0, 10, 0)], [(0, 30, 0)]])
    assert counts is None and fraction == 0.0 and "multiplexed out for the whole step" in problem
    counts, fraction, _, problem = scale_step(before, before)
    assert counts is fraction is None and "no thread ran" in problem


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_unprivileged_user_under_paranoid_2():
    """As a normal user (paranoid=2): software events fall back to user-space, context switches
    come from getrusage, and nothing crashes."""
    paranoid = int(open("/proc/sys/kernel/perf_event_paranoid").read())
    if paranoid < 2:
        pytest.skip(f"perf_event_paranoid={paranoid}")
    code = textwrap.dedent("""
        import json, os, time
        from hrvs_ray.probes.counters import open_counters   # import first: nobody cannot read root's files
        os.setgid(65534); os.setuid(65534)
        def switches():   # an independent source: the kernel's per-process counts
            f = dict(l.split(":") for l in open("/proc/self/status") if "ctxt_switches" in l)
            return sum(int(v) for v in f.values())
        c = open_counters()
        c.begin()
        before = switches()
        for _ in range(20):
            time.sleep(0.001)
        after = switches()
        print(json.dumps(dict(c.end(), sw_kernel=c.sw_kernel, proc_switches=after - before)))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    # each sleep blocks, so the kernel counts switches; getrusage must see at least those
    # (a count, not a time: but not a fixed 20 either, since a loaded host may merge a pair)
    assert s["sw_kernel"] is False and s["task_clock_ns"] > 0
    assert s["proc_switches"] >= 10 and s["context_switches"] >= s["proc_switches"]


@pytest.mark.slow
def test_torch_pool_started_after_open_is_counted():
    """The cell's order: open counters, import torch, start its thread pool, then steps."""
    code = textwrap.dedent("""
        import json, os, time
        from hrvs_ray.probes.counters import open_counters
        c = open_counters()
        import torch
        torch.set_num_threads(2)
        a = torch.rand(600, 600)
        a @ a                      # the pool exists before the first step, as CellRunner ensures
        c.begin()
        t0 = time.process_time()
        while time.process_time() - t0 < 0.3:   # a CPU-time budget, not a fixed count: hosts differ
            a @ a
        s = c.end()
        print(json.dumps(dict(s, threads=len(os.listdir("/proc/self/task")), sets=len(c.sw.fds))))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert s["sets"] == s["threads"] >= 2           # every thread its own group, the pool's included
    assert s["cpu_seconds"] > 0.1
    assert s["task_clock_ns"] / 1e9 == pytest.approx(s["cpu_seconds"], rel=0.12)
