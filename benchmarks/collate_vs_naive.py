"""Preallocated in-place collate vs the naive pad-each-image-then-stack, side by side in
one run (the machine is shared and noisy: compare ratios, not absolute times).

    .venv/bin/python benchmarks/collate_vs_naive.py [--scale 0.25] [--repeats 5]

Batches are drawn from the real MAMe shapes (MR&VS: shorter side 500 * scale, batch 32;
HR&VS: original * scale, batch 4). Prints time and peak extra memory of each method.
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import torch

from hrvs_ray.config import InputSetSpec
from hrvs_ray.data.batching import batch_order, geometry
from hrvs_ray.data.shapes import shipped_shape_table, transformed_shape
from hrvs_ray.train.collate import MEAN, STD, collate


def naive(geom, images):
    mean = torch.tensor(MEAN)[:, None, None]
    std = torch.tensor(STD)[:, None, None]
    padded = []
    for img, p in zip(images, geom.placements):
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    table = shipped_shape_table().select("train").sorted()
    shapes0 = dict(zip(table.ids, zip(table.heights.tolist(), table.widths.tolist())))
    torch.set_num_threads(1)
    for iset in (InputSetSpec("MR&VS", "shorter_side", 32, (int(500 * a.scale),)), InputSetSpec("HR&VS", "none", 4)):
        rows = {"inplace": [], "naive": []}
        for run in range(a.repeats):
            ids = batch_order(table.ids, 7, run, iset.batch_size, 1)[0]
            sh = {}
            for i in ids:
                h, w = transformed_shape(iset, *shapes0[i])
                sh[i] = (max(1, int(h * (a.scale if iset.resize == "none" else 1))),
                         max(1, int(w * (a.scale if iset.resize == "none" else 1))))
            rng = np.random.default_rng(run)
            imgs = [rng.integers(0, 256, (*sh[i], 3), dtype=np.uint8) for i in ids]
            g = geometry(ids, sh)
            for name, fn in (("inplace", lambda: collate(g, imgs)[0]), ("naive", lambda: naive(g, imgs))):
                rows[name].append(peak_rss_delta(fn))
            x, y = collate(g, imgs)[0], naive(g, imgs)
            assert torch.allclose(x, y, atol=1e-5)
        ti = np.median([r[0] for r in rows["inplace"]])
        tn = np.median([r[0] for r in rows["naive"]])
        mi = np.median([r[1] for r in rows["inplace"]]) / 1e6
        mn = np.median([r[1] for r in rows["naive"]]) / 1e6
        print(f"{iset.name}: in-place {ti*1e3:.1f} ms, +{mi:.0f} MB peak | naive {tn*1e3:.1f} ms, +{mn:.0f} MB peak "
              f"| time ratio naive/in-place {tn/ti:.2f}x, memory ratio {mn/max(mi,1e-9):.2f}x")


if __name__ == "__main__":
    main()
