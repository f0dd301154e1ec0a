"""Does the harness perturb what it measures? A cell's timed step against a bare PyTorch loop.

    python benchmarks/harness_overhead.py [--rounds 5] [--steps 8] [--shape 16,3,96,128]

Every round runs each variant once, interleaved, each in a fresh process, on the same batch
shape, model, optimizer and thread count (all CPUs of this process):

- ``bare``: torchvision ResNet18 + torch.optim.Adam (PyTorch's default implementation
  choice), a random batch, forward + backward + step timed with perf_counter;
- ``bare+foreach0``: the same with ``Adam(foreach=False)``, as the harness builds it;
- ``bare+affinity``: the same, pinned with ``sched_setaffinity`` + thread env vars first;
- ``bare+counters``: the same, with hrvs-ray's perf_event counters opened before torch
  (``inherit``) and read around each step;
- ``bare+trim``: the same, with glibc's ``malloc_trim(0)`` before each step (untimed), as
  the harness does so that a step's peak RSS is its own;
- ``harness``: hrvs-ray's own ``CellRunner`` (placement, counters, determinism settings,
  probes, FLOPs) running a cell of that shape (an LR&FS-like fixed-size input set).

Prints the median step time of each variant per round, and each variant's ratio to
``bare`` (median over rounds of the per-round ratio): the figure issue 11 asks for.
"""
from __future__ import annotations

import argparse
import json
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
times = []
trim = None
if variant == "bare+trim":
    import ctypes
    trim = ctypes.CDLL(None).malloc_trim
for _ in range(steps + 1):
    if trim: trim(0)
    if counters: counters.begin()
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    times.append(time.perf_counter() - t0)
    if counters: counters.end()
print(json.dumps({"seconds": times[1:]}))
"""

HARNESS = r"""
import json, sys
from hrvs_ray.config import load_sweep
from hrvs_ray.cluster.cell_process import CellRunner
from hrvs_ray.plan.cells import plan_cells
from hrvs_ray.node.topology import read_topology, resolve_scope
sweep = load_sweep(sys.argv[1])
cell = plan_cells(sweep, ["local"])[0]
out = CellRunner(resolve_scope(read_topology("/"), "node"), "generic").run(cell, sweep.dataset, "local")
assert out.status == "ok", out.error
t = out.steps.to_pandas()
print(json.dumps({"seconds": t.loc[~t["warmup"], "seconds"].tolist()}))
"""

VARIANTS = ("bare", "bare+foreach0", "bare+affinity", "bare+counters", "bare+trim", "harness")


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


def run(variant: str, shape: tuple[int, ...], steps: int, sweep: Path) -> float:
    if variant == "harness":
        args = [sys.executable, "-c", HARNESS, str(sweep)]
    else:
        args = [sys.executable, "-c", BARE, variant, ",".join(map(str, shape)), str(steps)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return statistics.median(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--shape", default="16,3,96,128")
    args = ap.parse_args()
    shape = tuple(map(int, args.shape.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        sweep = sweep_file(Path(tmp), shape, args.steps)
        run("harness", shape, 1, sweep)                  # dataset generated and cached once
        ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(args.rounds):
            got = {v: run(v, shape, args.steps, sweep) for v in VARIANTS}
            print(f"round {r}: " + "  ".join(f"{v} {got[v] * 1e3:.1f} ms" for v in VARIANTS), flush=True)
            for v in VARIANTS:
                ratios[v].append(got[v] / got["bare"])
    print(f"median step time ratio to bare over {args.rounds} rounds (shape {args.shape}):")
    for v in VARIANTS[1:]:
        print(f"  {v:<14} {statistics.median(ratios[v]):.3f}  (rounds: {', '.join(f'{x:.3f}' for x in ratios[v])})")


if __name__ == "__main__":
    main()
