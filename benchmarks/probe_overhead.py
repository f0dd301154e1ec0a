"""Cost of the per-step probes (counters begin/end, peak-RSS reset + reads), in microseconds.

    python -m benchmarks.probe_overhead [--iters N] [--threads T] [--torch] [--open-after-torch]
                                        [--repeats 3] [--quick]

With --torch, torch's intra-op pool is started first (so the counters cover its threads too),
as in a training cell; with --open-after-torch the counters are opened after the pool exists
(one event set per thread). Every repeat times both probes over ``--iters`` calls.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Benchmark, main
from hrvs_ray.probes import memory
from hrvs_ray.probes.counters import open_counters


def bench(fn: Callable[[], None], iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters * 1e6


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--open-after-torch", action="store_true",
                    help="open the counters after torch's pool exists (one event set per thread)")


def setup(args: argparse.Namespace, stack: contextlib.ExitStack) -> Any:
    c = None if args.open_after_torch else open_counters("generic")
    if args.torch or args.open_after_torch:
        import torch
        torch.set_num_threads(args.threads)
        torch.ones(512, 512) @ torch.ones(512, 512)       # start the pool
    if c is None:
        c = open_counters("generic")
    stack.callback(c.close)
    return c


def info(_args: argparse.Namespace, c: Any) -> dict[str, Any]:
    c.begin()
    sample = c.end()
    return {"threads_in_process": len(os.listdir("/proc/self/task")),
            "threads_with_event_sets": len(c.sw.fds) if c.sw else 0,
            "counter_status": sample["counter_status"], "grouping": c.grouping}


def once(args: argparse.Namespace, c: Any) -> dict[str, float]:
    def pair() -> None:
        c.begin()
        c.end()

    def mem() -> None:
        memory.reset_peak_rss()
        memory.rss_bytes()
        memory.peak_rss_bytes()
    return {"counters_begin_end_us": bench(pair, args.iters), "memory_reset_and_reads_us": bench(mem, args.iters)}


BENCH = Benchmark("probe_overhead", __doc__.splitlines()[0], once, setup=setup, add_arguments=add_arguments,
                  quick={"iters": 200}, info=info)

if __name__ == "__main__":
    sys.exit(main(BENCH))
