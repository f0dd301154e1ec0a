"""Does a step's memory depend on what an earlier, larger step left behind?

    python -m benchmarks.memory_carryover [--small 4,3,160,200] [--large 4,3,480,600] [--pairs 3]
                                          [--repeats 3] [--quick]

Two fresh processes train the same ResNet18 + Adam with the harness's own probes (VmHWM
reset before each step): one on the small batch only, one alternating large and small
batches. For the small steps of each, prints peak RSS and the step's own growth
(peak − RSS at its start). The difference is what an earlier large step leaves behind:
allocator heap kept (raises the small step's start and peak RSS) and reused (lowers its
growth). The report states this next to Table 2. Both ways: with the heap kept between
steps (glibc's default) and with ``malloc_trim(0)`` before each step (``execution.release_heap``).
Each repeat starts the four processes anew.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

from benchmarks.harness import REPO, Benchmark, main

CHILD = r"""
import json, sys, torch
from hrvs_ray.config import ModelSpec, NetworkSpec, OptimizerSpec
from hrvs_ray.probes import memory
from hrvs_ray.train.model import build_model, build_optimizer, train_step
order = sys.argv[1].split(";")
trim = sys.argv[2] == "trim"
import ctypes, time
libc = ctypes.CDLL(None)
torch.set_num_threads(2)
model = build_model(NetworkSpec(), 0); model.train()
opt = build_optimizer(OptimizerSpec(), model)
base = memory.rss_bytes()
rows = []
for spec in order:
    shape = tuple(map(int, spec.split(",")))
    x = torch.randn(*shape); y = torch.zeros(shape[0], dtype=torch.long)
    if trim:
        libc.malloc_trim(0)
    memory.reset_peak_rss(); start = memory.rss_bytes()
    t0 = time.perf_counter()
    train_step(model, opt, [(x, y)], "float32")
    sec = time.perf_counter() - t0
    peak = max(memory.peak_rss_bytes(), memory.rss_bytes())
    rows.append({"shape": spec, "start": start, "peak": peak, "growth": peak - start, "seconds": sec})
    del x, y
print(json.dumps({"baseline": base, "rows": rows}))
"""


def run(order: list[str], trim: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, ";".join(order), "trim" if trim else "keep"],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--small", default="4,3,160,200")
    ap.add_argument("--large", default="4,3,480,600")
    ap.add_argument("--pairs", type=int, default=3)


def once(a: argparse.Namespace, _ctx: Any) -> dict[str, float]:
    med = statistics.median
    got = {}
    for trim in (False, True):
        way = "trim" if trim else "kept"
        alone = run([a.small] * (2 * a.pairs + 1), trim)
        mixed = run([a.small] + [a.large, a.small] * a.pairs, trim)
        # the first step of each process sets up Adam's state: not a step like the others
        small_alone = alone["rows"][1:]
        small_mixed = [r for r in mixed["rows"][1:] if r["shape"] == a.small]
        got[f"{way}: small alone peak_bytes"] = med(r["peak"] for r in small_alone)
        got[f"{way}: small after large peak_bytes"] = med(r["peak"] for r in small_mixed)
        got[f"{way}: small after large growth_bytes"] = med(r["growth"] for r in small_mixed)
        got[f"{way}: small alone step_s"] = med(r["seconds"] for r in small_alone)
        got[f"{way}: peak after large / alone"] = (got[f"{way}: small after large peak_bytes"]
                                                   / got[f"{way}: small alone peak_bytes"])
    got["trim / kept step time"] = got["trim: small alone step_s"] / got["kept: small alone step_s"]
    return got


BENCH = Benchmark("memory_carryover", __doc__.splitlines()[0], once, add_arguments=add_arguments,
                  quick={"small": "2,3,64,80", "large": "2,3,192,240", "pairs": 1},
                  units={"kept: peak after large / alone": "x", "trim: peak after large / alone": "x",
                         "trim / kept step time": "x"})

if __name__ == "__main__":
    sys.exit(main(BENCH))
