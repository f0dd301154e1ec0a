"""Preallocated in-place collate vs the naive pad-each-image-then-stack, side by side in
one run (the machine is shared and noisy: compare ratios, not absolute times).

    python -m benchmarks.collate_vs_naive [--scale 0.25] [--repeats 5] [--quick]

Batches are drawn from the real MAMe shapes (MR&VS: shorter side 500 * scale, batch 32;
HR&VS: original * scale, batch 4). Every repeat measures each method once per input set,
interleaved, each in a fresh process (so the allocator's earlier frees cannot hide a
peak): time and peak extra memory, and naive ÷ in-place for both.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

from benchmarks.harness import REPO, Benchmark, main
from hrvs_ray.config import InputSetSpec
from hrvs_ray.data.shapes import shipped_shape_table, transformed_shape
from hrvs_ray.plan.padding import geometry
from hrvs_ray.plan.seeded_order import batch_order
from hrvs_ray.train.collate import MEAN, STD, collate


def naive(geom, images):
    mean = torch.tensor(MEAN)[:, None, None]
    std = torch.tensor(STD)[:, None, None]
    padded = []
    for img, p in zip(images, geom.placements, strict=False):
        t = (torch.from_numpy(img).permute(2, 0, 1).float() / 255 - mean) / std
        padded.append(torch.nn.functional.pad(t, (p.left, geom.width - p.width - p.left,
                                                  p.top, geom.height - p.height - p.top)))
    return torch.stack(padded)


def peak_rss_delta(fn) -> tuple[float, int]:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _hwm()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    del out
    return dt, _hwm() - base


def _hwm() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def batch(iset: InputSetSpec, run: int, scale: float):
    table = shipped_shape_table().select("train").sorted()
    shapes0 = dict(zip(table.ids, zip(table.heights.tolist(), table.widths.tolist(), strict=False), strict=False))
    ids = batch_order(table.ids, 7, run, iset.batch_size, 1)[0]
    sh = {}
    for i in ids:
        h, w = transformed_shape(iset, *shapes0[i])
        f = scale if iset.resize == "none" else 1
        sh[i] = (max(1, int(h * f)), max(1, int(w * f)))
    rng = np.random.default_rng(run)
    return geometry(ids, sh), [rng.integers(0, 256, (*sh[i], 3), dtype=np.uint8) for i in ids]


SETS = {"MR&VS": lambda s: InputSetSpec("MR&VS", "shorter_side", 32, (int(500 * s),)),
        "HR&VS": lambda s: InputSetSpec("HR&VS", "none", 4)}


def child(method: str, set_name: str, run: int, scale: float) -> None:
    """One measurement in a fresh process, so the allocator's earlier frees cannot hide a peak."""
    torch.set_num_threads(1)
    g, imgs = batch(SETS[set_name](scale), run, scale)
    fn = (lambda: collate(g, imgs)[0]) if method == "inplace" else (lambda: naive(g, imgs))
    dt, mem = peak_rss_delta(fn)
    print(f"{dt} {mem}")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "SET", "RUN"), help=argparse.SUPPRESS)


def setup(args: argparse.Namespace, _stack: Any) -> dict[str, int]:
    for name in SETS:
        g, imgs = batch(SETS[name](args.scale), 0, args.scale)
        assert torch.allclose(collate(g, imgs)[0], naive(g, imgs), atol=1e-5)   # same batch either way
    return {"run": 0}


def once(args: argparse.Namespace, ctx: dict[str, int]) -> dict[str, float]:
    run, ctx["run"] = ctx["run"], ctx["run"] + 1   # each repeat draws the next seeded batch
    got: dict[str, float] = {}
    for name in SETS:
        row = {}
        for method in ("inplace", "naive"):  # interleaved: both see the same machine noise
            out = subprocess.run([sys.executable, "-m", "benchmarks.collate_vs_naive", "--scale", str(args.scale),
                                  "--child", method, name, str(run)], capture_output=True, text=True, check=True,
                                 cwd=REPO).stdout.split()
            row[method] = (float(out[0]), int(out[1]))
            got[f"{name} {method}_s"], got[f"{name} {method}_peak_bytes"] = row[method]
        got[f"{name} naive/inplace time"] = row["naive"][0] / row["inplace"][0]
        got[f"{name} naive/inplace memory"] = row["naive"][1] / max(row["inplace"][1], 1)
    return got


UNITS = {f"{s} naive/inplace {k}": "x" for s in SETS for k in ("time", "memory")}
BENCH = Benchmark("collate_vs_naive", __doc__.splitlines()[0], once, setup=setup, add_arguments=add_arguments,
                  quick={"scale": 0.05}, units=UNITS, default_repeats=5)

if __name__ == "__main__":
    if "--child" in sys.argv:   # one measurement, in the fresh process the parent started
        a = argparse.ArgumentParser()
        add_arguments(a)
        c = a.parse_args()
        child(c.child[0], c.child[1], int(c.child[2]), c.scale)
    else:
        sys.exit(main(BENCH))
