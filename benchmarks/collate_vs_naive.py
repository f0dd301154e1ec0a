"""Preallocated in-place collate vs the naive pad-each-image-then-stack, side by side in
one run (the machine is shared and noisy: compare ratios, not absolute times).

    .venv/bin/python benchmarks/collate_vs_naive.py [--scale 0.25] [--repeats 5]

Batches are drawn from the real MAMe shapes (MR&VS: shorter side 500 * scale, batch 32;
HR&VS: original * scale, batch 4). Prints time and peak extra memory of each method.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

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


def main() -> None:
    import subprocess
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "SET", "RUN"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], int(a.child[2]), a.scale)
        return
    for name in SETS:
        g, imgs = batch(SETS[name](a.scale), 0, a.scale)
        assert torch.allclose(collate(g, imgs)[0], naive(g, imgs), atol=1e-5)   # same batch either way
        rows = {"inplace": [], "naive": []}
        for run in range(a.repeats):
            for method in ("inplace", "naive"):  # interleaved: both see the same machine noise
                out = subprocess.run([sys.executable, __file__, "--scale", str(a.scale), "--child", method, name,
                                      str(run)], capture_output=True, text=True, check=True).stdout.split()
                rows[method].append((float(out[0]), int(out[1])))
        ti, tn = (np.median([r[0] for r in rows[m]]) for m in ("inplace", "naive"))
        mi, mn = (np.median([r[1] for r in rows[m]]) / 1e6 for m in ("inplace", "naive"))
        print(f"{name}: in-place {ti*1e3:.1f} ms, +{mi:.0f} MB peak | naive {tn*1e3:.1f} ms, +{mn:.0f} MB peak "
              f"| naive/in-place: time {tn/ti:.2f}x, memory {mn/max(mi, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
