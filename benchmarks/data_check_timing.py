"""What the sweep's pre-flight header check and ``hrvs-ray data check`` cost.

    .venv/bin/python benchmarks/data_check_timing.py [DATASET_DIR]

Times, on this machine: the header check (``preflight``) of the quick sweep's images, and
on DATASET_DIR (default /tmp/synth20k, made with
``hrvs-ray data synth --out /tmp/synth20k --count 20000 --scale 0.02``) the header check
of every image of the folder and the full-decode ``data check`` on one process and on
every core. Nothing is written but the quick sweep's synthetic dataset (if missing).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from hrvs_ray.config import DatasetSpec, InputSetSpec, load_sweep
from hrvs_ray.plan.preflight import data_check, preflight

REPO = Path(__file__).resolve().parents[1]


def timed(label: str, fn) -> object:
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<58} {time.perf_counter() - t0:7.2f} s")
    return out


def main(root: str) -> None:
    quick = load_sweep(REPO / "sweeps" / "quick.yaml")
    preflight(quick)   # generate once, outside the timing
    timed("preflight, quick sweep (headers of its cells' images)", lambda: preflight(quick))

    n = sum(1 for _ in os.scandir(Path(root) / "data"))
    # one input set whose cells read every image of the folder: batch n/20, 20 steps, subset all
    big = replace(quick, dataset=DatasetSpec(kind="mame", path=root, subset="all"),
                  input_sets=(InputSetSpec("LR&FS", "fixed", n // 20, (64, 64)),),
                  training=replace(quick.training, warmup_steps=0, steps=20, runs=1))
    ds = timed(f"preflight, {n} files (headers)", lambda: preflight(big))
    print(f"  ({len(ds)} images in the dataset)")
    cores = len(os.sched_getaffinity(0))
    for workers in sorted({1, cores}):
        res = timed(f"data check --all, {n} files, full decode, {workers} process(es)",
                    lambda workers=workers: data_check(big, every_image=True, workers=workers))
        print(f"  ({res.checked} images checked, {len(res.problems)} problems)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/synth20k")
