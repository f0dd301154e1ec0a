"""Does the harness perturb what it measures? A cell's timed step against a bare PyTorch loop.

    python -m benchmarks.harness_overhead [--repeats 5] [--steps 6] [--shape 8,3,224,224]
                                          [--detail] [--warmup-rounds 1] [--quick]

Every repeat is one round that runs each variant once, interleaved (the order rotates from
round to round, so a slow drift of the machine lands on each in turn), on the same batch
shape, model, optimizer and thread count (all CPUs of this process):

- ``bare``: torchvision ResNet18 + torch.optim.Adam (PyTorch's default implementation), a
  random batch, forward + backward + step timed with perf_counter, in a fresh process;
- ``forked``: hrvs-ray's cell (placement, counters, determinism, memory and CPU probes, FLOPs)
  of that shape (an LR&FS-like fixed-size input set), forked from a zygote that imported torch,
  through a ``CellHost`` as a sweep runs it (``execution.process: fork``);
- ``fresh``: the same cell in a fresh interpreter that imported nothing before it, through a
  ``CellHost`` (``execution.process: fresh``).

Each round's value per variant is the median of its timed steps (a step untimed first). The
conclusions are each variant's ratio to ``bare``: the geometric mean of the per-round ratios
with its 95 % interval (Student t on the log ratios, rounds as the unit of noise), and whether
that interval lies within ±3 %. ``--warmup-rounds`` rounds run first and are discarded: on a
machine that just booted, the first processes read torch from disk and the CPU settles.
``--detail`` adds the bare loop's variants that isolate what the harness does differently,
each a named cost: ``bare+foreach0`` (Adam ``foreach=False``, as the harness builds it),
``bare+affinity`` (pinned with ``sched_setaffinity`` + thread variables first),
``bare+counters`` (hrvs-ray's perf_event counters opened before torch and read around each
step), ``bare+probes`` (the memory and /proc/stat reads around each step) and ``bare+trim``
(glibc's ``malloc_trim(0)`` before each step, untimed: ``execution.release_heap``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import Benchmark, main
from hrvs_ray.metrics.stats import t_ppf

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

DETAIL = ["bare+foreach0", "bare+affinity", "bare+counters", "bare+probes", "bare+trim"]
CELLS = ["forked", "fresh"]
WITHIN = 0.03      # the bound: a forked cell's step within 3 % of the bare loop's


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


def variants(args: argparse.Namespace) -> list[str]:
    return ["bare", *CELLS] + (DETAIL if args.detail else [])


def shape_of(args: argparse.Namespace) -> tuple[int, ...]:
    return tuple(map(int, args.shape.split(",")))


def step_median(variant: str, args: argparse.Namespace, cells: dict[str, Cells]) -> float:
    """One run of a variant: the median of its timed steps, in seconds."""
    if variant in cells:
        return statistics.median(cells[variant].run())
    argv = [sys.executable, "-c", BARE, variant, args.shape, str(args.steps)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return statistics.median(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--steps", type=int, default=6, help="timed steps per run (one untimed first)")
    ap.add_argument("--shape", default="8,3,224,224", help="the batch: N,C,H,W")
    ap.add_argument("--detail", action="store_true", help="also the bare loop's variants that isolate each cost")
    ap.add_argument("--warmup-rounds", type=int, default=1, help="rounds run first and discarded")


def setup(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    sweep = sweep_file(tmp, shape_of(args), args.steps)
    cells = {c: Cells(sweep, p) for c, p in (("forked", "fork"), ("fresh", "fresh"))}
    for c in cells.values():
        stack.callback(c.close)
    cells["forked"].run()                  # dataset generated and cached, zygote warm, once
    ctx = {"cells": cells, "round": 0}
    for _ in range(args.warmup_rounds):
        for v in variants(args):
            step_median(v, args, cells)
        print("[harness_overhead] warm-up round done (discarded)", file=sys.stderr)
    return ctx


def once(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, float]:
    vs = variants(args)
    r = ctx["round"]
    ctx["round"] += 1
    order = vs[r % len(vs):] + vs[:r % len(vs)]                    # rotate
    got = {v: step_median(v, args, ctx["cells"]) for v in order}
    return {**{f"{v}_s": got[v] for v in vs}, **{f"{v}_ratio": got[v] / got["bare"] for v in vs[1:]}}


def ratio_interval(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Geometric mean of per-round ratios and its 95 % interval (Student t on the logs)."""
    logs = [math.log(r) for r in ratios]
    m = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(m), math.nan, math.nan
    half = t_ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(m), math.exp(m - half), math.exp(m + half)


def conclude(args: argparse.Namespace, values: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in (k for k in values if k.endswith("_ratio")):
        g, lo, hi = ratio_interval(values[key])
        verdict = ("within ±3 % of bare" if 1 - WITHIN <= lo and hi <= 1 + WITHIN else
                   "measurably slower than bare" if lo > 1 else "measurably faster than bare" if hi < 1 else
                   "not shown within ±3 % (the interval is wider)")
        ci = None if math.isnan(lo) else [round(lo, 4), round(hi, 4)]
        out[key.removesuffix("_ratio") + " ÷ bare"] = {"geomean": round(g, 4), "ci95": ci,
                                                       "rounds": len(values[key]), "verdict": verdict}
    return out


def check(args: argparse.Namespace, summary: dict[str, dict[str, Any]]) -> list[str]:
    n = summary["bare_s"]["n"]
    return [] if args.quick or n >= 5 else [f"{n} rounds: at least 5 are needed for a usable interval"]


UNITS = {f"{v}_ratio": "x" for v in CELLS + DETAIL}
BENCH = Benchmark("harness_overhead", __doc__.splitlines()[0], once, setup=setup, add_arguments=add_arguments,
                  quick={"steps": 2, "shape": "2,3,64,64", "warmup_rounds": 0}, units=UNITS, check=check,
                  conclude=conclude, info=lambda a, _ctx: {"shape": a.shape, "steps": a.steps,
                                                           "threads": len(os.sched_getaffinity(0)),
                                                           "warmup_rounds": a.warmup_rounds},
                  default_repeats=5)

if __name__ == "__main__":
    sys.exit(main(BENCH))
