"""Does a step's memory depend on what an earlier, larger step left behind?

    python benchmarks/memory_carryover.py [--small 4,3,160,200] [--large 4,3,480,600] [--pairs 3]

Two fresh processes train the same ResNet18 + Adam with the harness's own probes (VmHWM
reset before each step): one on the small batch only, one alternating large and small
batches. For the small steps of each, prints peak RSS and the step's own growth
(peak − RSS at its start). The difference is what an earlier large step leaves behind:
allocator heap kept (raises the small step's start and peak RSS) and reused (lowers its
growth). The report states this next to Table 2.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

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
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", default="4,3,160,200")
    ap.add_argument("--large", default="4,3,480,600")
    ap.add_argument("--pairs", type=int, default=3)
    a = ap.parse_args()
    for trim in (False, True):
        print(f"== {'malloc_trim(0) before each step' if trim else 'heap kept between steps (default glibc)'}")
        report(a, run([a.small] * (2 * a.pairs + 1), trim), run([a.small] + [a.large, a.small] * a.pairs, trim))


def report(a: argparse.Namespace, alone: dict, mixed: dict) -> None:
    gb = 1e9
    med = statistics.median
    for name, got in (("small only", alone), ("large/small alternating", mixed)):
        small = [r for r in got["rows"][1:] if r["shape"] == a.small]
        large = [r for r in got["rows"] if r["shape"] == a.large]
        print(f"{name:<24} baseline {got['baseline'] / gb:.2f} GB; small steps: start "
              f"{med(r['start'] for r in small) / gb:.2f} GB, peak {med(r['peak'] for r in small) / gb:.2f} GB, "
              f"growth {med(r['growth'] for r in small) / gb:.3f} GB, {med(r['seconds'] for r in small) * 1e3:.0f} ms"
              + (f"; large steps: peak {med(r['peak'] for r in large) / gb:.2f} GB, growth "
                 f"{med(r['growth'] for r in large) / gb:.3f} GB" if large else ""))
    small_alone = alone["rows"][1:]
    small_mixed = [r for r in mixed["rows"][1:] if r["shape"] == a.small]
    print(f"small step after a large one vs small steps alone: peak "
          f"x{med(r['peak'] for r in small_mixed) / med(r['peak'] for r in small_alone):.2f}")

if __name__ == "__main__":
    main()
