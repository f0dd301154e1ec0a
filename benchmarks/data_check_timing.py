"""What the sweep's pre-flight header check and ``hrvs-ray data check`` cost.

    python -m benchmarks.data_check_timing [--dataset DIR] [--count N] [--repeats 3] [--quick]

Times, on this machine: the header check (``preflight``) of the quick sweep's images, and
on DATASET_DIR the header check of every image of the folder and the full-decode
``data check`` on one process and on every core. DATASET_DIR defaults to /tmp/synth20k;
when it holds no dataset, one of ``--count`` images (default 20,000) is generated there
first, as ``hrvs-ray data synth --out /tmp/synth20k --count 20000 --scale 0.02`` would (untimed).
``--quick``: 500 images in /tmp/synth500. Nothing else is written but the quick sweep's
synthetic dataset (if missing).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO, Benchmark, main
from hrvs_ray.config import DatasetSpec, InputSetSpec, load_sweep
from hrvs_ray.plan.preflight import data_check, preflight


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--dataset", type=Path, default=Path("/tmp/synth20k"))
    ap.add_argument("--count", type=int, default=20000, help="images to generate when DATASET_DIR is empty")


def setup(args: argparse.Namespace, _stack: contextlib.ExitStack) -> dict[str, Any]:
    if not (args.dataset / "data").is_dir():
        from hrvs_ray.cli import main as cli
        rc = cli(["data", "synth", "--out", str(args.dataset), "--count", str(args.count), "--scale", "0.02"])
        if rc:
            raise SystemExit(f"could not generate {args.dataset} (exit {rc})")
    quick = load_sweep(REPO / "sweeps" / "quick.yaml")
    preflight(quick)   # generate once, outside the timing
    n = sum(1 for _ in os.scandir(args.dataset / "data"))
    # one input set whose cells read every image of the folder: batch n/20, 20 steps, subset all
    big = replace(quick, dataset=DatasetSpec(kind="mame", path=str(args.dataset), subset="all"),
                  input_sets=(InputSetSpec("LR&FS", "fixed", n // 20, (64, 64)),),
                  training=replace(quick.training, warmup_steps=0, steps=20, runs=1))
    return {"quick": quick, "big": big, "files": n, "cores": len(os.sched_getaffinity(0))}


def info(_args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    return {"files": ctx["files"], "cores": ctx["cores"]}


def once(_args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, float]:
    got = {}
    t0 = time.perf_counter()
    preflight(ctx["quick"])
    got["preflight_quick_sweep_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    preflight(ctx["big"])
    got["preflight_all_files_s"] = time.perf_counter() - t0
    for workers in sorted({1, ctx["cores"]}):
        t0 = time.perf_counter()
        res = data_check(ctx["big"], every_image=True, workers=workers)
        got[f"data_check_all_{workers}_workers_s"] = time.perf_counter() - t0
        if res.problems:
            raise SystemExit(f"{len(res.problems)} problems in {ctx['big'].dataset.path}: not a clean dataset")
    return got


BENCH = Benchmark("data_check_timing", __doc__.splitlines()[0], once, setup=setup, add_arguments=add_arguments,
                  quick={"dataset": Path("/tmp/synth500"), "count": 500}, info=info)

if __name__ == "__main__":
    sys.exit(main(BENCH))
