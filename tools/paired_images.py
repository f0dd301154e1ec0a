"""Paired images, padding and label diversity per batching policy, from metadata alone.

    python -m tools.paired_images [SWEEP.yaml ...] [--mame CSV]

For each sweep (default ``sweeps/quick-remedies.yaml`` and ``sweeps/remedies.yaml``):

1. Image overlap between policies per cell: for every cluster-independent cell group
   (scope, input set, run) and every combination, the share of ``pad``'s timed (and
   warm-up) image multiset that the combination's cell trains on — from ``step_plan``,
   the function every cell runs. Plan version 2 makes it 100 %.
2. For MR&VS and HR&VS, ``pad`` and ``bucket``: padding share (Σ padding ÷ Σ total) and
   label diversity per batch (distinct media mean/min, largest medium share mean/max)
   over the sweep's sampled timed steps and over one full epoch (``plan.epoch``).

``remedies.yaml`` plans on the real MAMe shapes: the dataset's own CSV when ``--mame`` is
given (default the shared copy beside the repository, when present), else the shipped table
(the same rows).
"""
from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace
from pathlib import Path

from hrvs_ray.config import load_sweep
from hrvs_ray.data.shapes import read_metadata_csv
from hrvs_ray.plan.cells import plan_cells, step_plan
from hrvs_ray.plan.epoch import policy_views
from hrvs_ray.plan.table import planning_shapes

REPO = Path(__file__).resolve().parents[1]


def overlap(sweep, shapes) -> None:
    groups: dict[tuple, dict] = {}
    for cell in plan_cells(sweep, ["any"]):
        idx = step_plan(cell, shapes.heights, shapes.widths)
        w = cell.warmup_steps
        groups.setdefault((cell.scope, cell.input_set.name, cell.run), {})[cell.remedy.label] = (
            Counter(idx[:w].ravel().tolist()), Counter(idx[w:].ravel().tolist()))
    worst = {"warm-up": 1.0, "timed": 1.0}
    for by in groups.values():
        pad = by["pad+fp32+nchw"]
        for warm, timed in by.values():
            for name, mine, ref in (("warm-up", warm, pad[0]), ("timed", timed, pad[1])):
                if ref:
                    worst[name] = min(worst[name], sum((mine & ref).values()) / sum(ref.values()))
    print(f"  image overlap with pad, lowest over {len(groups)} cell groups x {len(next(iter(groups.values())))} "
          f"combinations: warm-up {worst['warm-up']:.1%}, timed {worst['timed']:.1%}")


def views(sweep, shapes) -> None:
    v = policy_views(sweep, shapes, ["pad", "bucket"])
    for (name, batching), e in v.items():
        if name == "LR&FS":
            continue
        for view in ("sampled", "epoch"):
            x, lab = e[view], e[view]["labels"]
            print(f"  {name:<6} {batching:<7} {view:<8} {x['steps']:>5} steps  padding {x['padding_share']:6.1%}  "
                  f"media/batch {lab['mean_classes']:5.1f} (min {lab['min_classes']:.0f})  "
                  f"largest medium {lab['mean_top_share']:4.0%} (max {lab['max_top_share']:.0%})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sweeps", nargs="*", default=[REPO / "sweeps" / "quick-remedies.yaml",
                                                  REPO / "sweeps" / "remedies.yaml"])
    ap.add_argument("--mame", type=Path, default=REPO.parent / "shared" / "data" / "mame" / "MAMe_dataset.csv")
    a = ap.parse_args()
    for path in a.sweeps:
        sweep = load_sweep(path)
        shapes, source = planning_shapes(sweep)
        if sweep.dataset.kind == "mame" and a.mame.is_file():
            shapes, source = read_metadata_csv(a.mame).select(sweep.dataset.subset).sorted(), str(a.mame)
            sweep = replace(sweep, dataset=replace(sweep.dataset, path=str(a.mame.parent)))
        print(f"{sweep.name}: {len(shapes)} images from {source}; seed {sweep.training.seed}, "
              f"{sweep.training.warmup_steps} warm-up + {sweep.training.steps} timed steps "
              f"x {sweep.training.runs} runs")
        overlap(sweep, shapes)
        views(sweep, shapes)


if __name__ == "__main__":
    main()
