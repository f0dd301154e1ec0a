"""What each remedy buys, as ratios against the paper's setup, plus the plan's padding figures.

    python -m tools.remedies_ratios [RESULTS_DIR] [--mame CSV]

1. From a results folder (default ``results/quick-remedies``, written by
   ``hrvs-ray sweep sweeps/quick-remedies.yaml``): per cluster, scope and input set, every
   combination's s/informative-MP (Σ seconds ÷ Σ informative MP), peak RSS and padding, and its speed-up and memory
   ratio against pad + float32 + contiguous + no checkpointing measured in the same run —
   computed by the report's own ``grid`` (one place computes the comparison).
2. From the real MAMe metadata (``--mame``, default the shared copy beside the repository):
   the plan's padding share per batching policy for MR&VS (shorter side 500, batch 32) and
   HR&VS (batch 4) over 2,000 seeded batches, as ``hrvs-ray plan sweeps/remedies.yaml``
   computes it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from hrvs_ray.config import load_sweep
from hrvs_ray.data.shapes import read_metadata_csv
from hrvs_ray.plan.table import batch_table
from hrvs_ray.report.load import load
from hrvs_ray.report.remedies_section import grid, speed

REPO = Path(__file__).resolve().parents[1]


def measured(folder: Path) -> None:
    g = grid(load([folder]))
    for (cluster, scope, iset), rows in g.groupby(["cluster", "scope", "input_set"], sort=False):
        print(f"\n{cluster} {scope} {iset}: s/inf-MP (Σ s ÷ Σ MP), peak GB, padding, vs pad+fp32+nchw")
        rows = rows.assign(order=rows["speedup"].map(speed))
        for _, r in rows.sort_values("order", ascending=False).iterrows():
            if r["status"] != "ok":
                print(f"  {r['remedy']:<24} {r['status']}")
                continue
            print(f"  {r['remedy']:<24} {r['s_imp']:8.3f}  {r['peak_gb']:5.2f} GB  {r['pad_pct']:5.1f} %   "
                  f"speed-up {r['speedup'].text()}  memory {r['mem_ratio']:5.2f}x (ratio of peaks)")


def planned(csv: Path) -> None:
    sweep = load_sweep(REPO / "sweeps" / "remedies.yaml")
    shapes = read_metadata_csv(csv).select(sweep.dataset.subset).sorted()
    table = batch_table(sweep, 2000, shapes)
    print(f"\nplan on {csv} ({len(shapes)} images, 2,000 batches, seed {sweep.training.seed}): padding share")
    for name, e in table.items():
        if e["input_set"] == "LR&FS":
            continue
        print(f"  {name:<20} {e['padding_share']:6.1%}   informative {e['informative']['avg']:.1f} MP"
              f"   planned peak fp32 {e['memory'][0]['gb']['max']:.1f} GB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="?", default=str(REPO / "results" / "quick-remedies"))
    ap.add_argument("--mame", default=str(REPO.parent / "shared" / "data" / "mame" / "MAMe_dataset.csv"))
    a = ap.parse_args()
    if Path(a.results).is_dir():
        measured(Path(a.results))
    else:
        print(f"{a.results}: no results folder (run: hrvs-ray sweep sweeps/quick-remedies.yaml)")
    if Path(a.mame).is_file():
        planned(Path(a.mame))


if __name__ == "__main__":
    main()
