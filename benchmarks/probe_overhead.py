"""Cost of the per-step probes (counters begin/end, peak-RSS reset + reads), in microseconds.

    python benchmarks/probe_overhead.py [--iters N] [--threads T] [--torch]

With --torch, torch's intra-op pool is started first (so the counters cover its threads too),
as in a training cell. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from hrvs_ray.probes import memory
from hrvs_ray.probes.counters import open_counters


def bench(fn, iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--open-after-torch", action="store_true",
                    help="open the counters after torch's pool exists (one event set per thread)")
    args = ap.parse_args()
    c = None if args.open_after_torch else open_counters("generic")
    if args.torch or args.open_after_torch:
        import torch
        torch.set_num_threads(args.threads)
        torch.ones(512, 512) @ torch.ones(512, 512)       # start the pool
    if c is None:
        c = open_counters("generic")

    def pair() -> None:
        c.begin()
        c.end()

    def mem() -> None:
        memory.reset_peak_rss()
        memory.rss_bytes()
        memory.peak_rss_bytes()
    c.begin()
    sample = c.end()
    out = {"threads_in_process": len(os.listdir("/proc/self/task")),
           "threads_with_event_sets": len(c.sw.fds) if c.sw else 0,
           "counter_status": sample["counter_status"], "grouping": c.grouping,
           "counters_begin_end_us": round(bench(pair, args.iters), 1),
           "memory_reset_and_reads_us": round(bench(mem, args.iters), 1)}
    c.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
