"""Does the harness perturb what it measures? A cell's timed step against a bare PyTorch loop.

    python benchmarks/harness_overhead.py [--rounds 5] [--steps 6] [--shape 8,3,224,224] [--detail]

Every round runs three things once each, interleaved (their order rotates from round to round,
so a slow drift of the machine lands on each in turn), on the same batch shape, model,
optimizer and thread count (all CPUs of this process):

- ``bare``: torchvision ResNet18 + torch.optim.Adam (PyTorch's default implementation), a
  random batch, forward + backward + step timed with perf_counter, in a fresh process;
- ``forked``: hrvs-ray's cell (placement, counters, determinism, memory and CPU probes, FLOPs)
  of that shape (an LR&FS-like fixed-size input set), forked from a zygote that imported torch,
  through a ``CellHost`` as a sweep runs it (``execution.process: fork``);
- ``fresh``: the same cell in a fresh interpreter that imported nothing before it, through a
  ``CellHost`` (``execution.process: fresh``).

It prints each round's median step time per variant, then each cell's ratio to ``bare``: the
geometric mean of the per-round ratios with its 95 % interval (Student t on the log ratios,
rounds as the unit of noise). ``--detail`` adds the bare loop's variants that isolate what the
harness does differently, each a named cost: ``bare+foreach0`` (Adam ``foreach=False``, as the
harness builds it), ``bare+affinity`` (pinned with ``sched_setaffinity`` + thread variables
first), ``bare+counters`` (hrvs-ray's perf_event counters opened before torch and read around
each step), ``bare+probes`` (the memory and /proc/stat reads around each step) and ``bare+trim``
(glibc's ``malloc_trim(0)`` before each step, untimed: ``execution.release_heap``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BARE = r"""
import json, os, sys, time
variant, shape, steps = sys.argv[1], tuple(map(int, sys.argv[2].split(","))), int(sys.argv[3])
threads = len(os.sched_getaffinity(0))
counters = None
if variant == "bare+affinity":
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[v] = str(threads)
    os.sched_setaffinity(0, os.sched_getaffinity(0))
if variant == "bare+counters":
    from hrvs_ray.probes.counters import open_counters
    counters = open_counters("generic")
import torch, torchvision
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchvision.models.resnet18(num_classes=29).train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4, **({"foreach": False} if variant == "bare+foreach0" else {}))
x = torch.randn(*shape)
y = torch.randint(0, 29, (shape[0],))
probes = variant == "bare+probes"
if probes:
    from hrvs_ray.probes import memory
    from hrvs_ray.probes.steal import read_cpu_ticks
    cpus = sorted(os.sched_getaffinity(0))
trim = None
if variant == "bare+trim":
    import ctypes
    trim = ctypes.CDLL(None).malloc_trim
times = []
for _ in range(steps + 1):
    if trim: trim(0)
    if probes:
        memory.reset_peak_rss(); m = memory.StepMemory.begin(); c0 = read_cpu_ticks(cpus)
    if counters: counters.begin()
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    times.append(time.perf_counter() - t0)
    if counters: counters.end()
    if probes:
        m.end(); read_cpu_ticks(cpus)
print(json.dumps({"seconds": times[1:]}))
"""

# Student t, 97.5 % quantile, by degrees of freedom (no scipy in the image)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df: int) -> float:
    return T975[max(k for k in T975 if k <= df)] if df < 30 else 1.96


def sweep_file(tmp: Path, shape: tuple[int, ...], steps: int) -> Path:
    n, _, h, w = shape
    p = tmp / "overhead.yaml"
    p.write_text(f"""name: overhead
dataset: {{kind: synthetic, path: {tmp}/ds, subset: train, synthetic: {{count: {max(2 * n, 40)}, scale: 0.05, seed: 0}},
          cache: {tmp}/cache}}
input_sets: {{FS: {{resize: fixed, size: [{h}, {w}], batch_size: {n}}}}}
training: {{warmup_steps: 1, steps: {steps}, runs: 1, seed: 1}}
scopes: [node]
""")
    return p


class Cells:
    """The cell through a CellHost, as a sweep runs it: ``fork`` (from the host's zygote, kept for
    the whole benchmark) or ``fresh`` (a new interpreter per cell)."""

    def __init__(self, sweep_path: Path, process: str) -> None:
        from hrvs_ray.cluster.zygote_client import CellHost
        from hrvs_ray.config import load_sweep
        from hrvs_ray.node.topology import read_topology, resolve_scope
        from hrvs_ray.plan.cells import plan_cells

        self.sweep = load_sweep(sweep_path)
        self.cell = plan_cells(self.sweep, ["local"])[0]
        placement = resolve_scope(read_topology("/"), "node", allowed=os.sched_getaffinity(0))
        self.host = CellHost(placement, self.cell.remedy.kernel_cache, process)

    def run(self) -> list[float]:
        out = self.host.run(self.cell, self.sweep.dataset, "local")
        assert out.status == "ok", out.error
        t = out.steps.to_pandas()
        return t.loc[~t["warmup"], "seconds"].tolist()

    def close(self) -> None:
        self.host.close()


def run(variant: str, shape: tuple[int, ...], steps: int, cells: dict[str, Cells]) -> float:
    if variant in cells:
        return statistics.median(cells[variant].run())
    args = [sys.executable, "-c", BARE, variant, ",".join(map(str, shape)), str(steps)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return statistics.median(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def ratio_interval(ratios: list[float]) -> tuple[float, float, float]:
    """Geometric mean of per-round ratios and its 95 % interval (t on the logs)."""
    logs = [math.log(r) for r in ratios]
    m = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(m), float("nan"), float("nan")
    half = t975(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(m), math.exp(m - half), math.exp(m + half)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--shape", default="8,3,224,224")
    ap.add_argument("--detail", action="store_true", help="also the bare loop's variants that isolate each cost")
    args = ap.parse_args()
    if args.rounds < 5:
        ap.error("at least 5 interleaved rounds: fewer give no usable interval")
    shape = tuple(map(int, args.shape.split(",")))
    variants = ["bare", "forked", "fresh"] + (["bare+foreach0", "bare+affinity", "bare+counters", "bare+probes",
                                               "bare+trim"] if args.detail else [])
    with tempfile.TemporaryDirectory() as tmp:
        sweep = sweep_file(Path(tmp), shape, args.steps)
        cells = {"forked": Cells(sweep, "fork"), "fresh": Cells(sweep, "fresh")}
        try:
            cells["forked"].run()                  # dataset generated and cached, zygote warm, once
            ratios: dict[str, list[float]] = {v: [] for v in variants}
            for r in range(args.rounds):
                order = variants[r % len(variants):] + variants[:r % len(variants)]   # rotate
                got = {v: run(v, shape, args.steps, cells) for v in order}
                print(f"round {r}: " + "  ".join(f"{v} {got[v] * 1e3:.1f} ms" for v in variants), flush=True)
                for v in variants:
                    ratios[v].append(got[v] / got["bare"])
        finally:
            for c in cells.values():
                c.close()
    print(f"step time ÷ bare, geometric mean of {args.rounds} interleaved rounds [95 % interval] "
          f"(shape {args.shape}, {len(os.sched_getaffinity(0))} threads):")
    for v in variants[1:]:
        g, lo, hi = ratio_interval(ratios[v])
        print(f"  {v:<14} {g:.3f} [{lo:.3f}, {hi:.3f}]  (rounds: {', '.join(f'{x:.3f}' for x in ratios[v])})")


if __name__ == "__main__":
    main()
