"""A/A check: how often do the tool's intervals claim a difference where there is none?

    python benchmarks/aa_check.py [--sweep sweeps/quick-remedies.yaml] [--cells 10]
                                  [--sets MR&VS,HR&VS] [--name s_per_informative_mp]

Runs the same cell (same images, same setup: the sweep's paper setup at its first scope,
run 0, the sweep's own warm-up and timed step counts) ``--cells`` times per input set, each
as an independent cell: a fresh process placed and counted exactly as the sweep's actors
do it: a fresh fork of the node's zygote (hrvs_ray.cluster.zygote), without Ray. Then every pair of those cells is
compared with the interval the report and ``compare`` state (hrvs_ray.metrics.interval),
and the share of pairs whose interval excludes 1 is printed: the false-positive rate, which
must be at most about 5 %. Two rates: one run each with nothing else known (a one-run
sweep: the interval covers step-to-step noise only), and with the run-to-run spread known
from the other cells of the set (as in a sweep whose groups have several runs: each pair's
interval uses the pooled spread of the cells not in it). ``--save FILE`` keeps the rows.
Splitting one cell's steps in two would not do: it would hide what differs between cells
(process, heap, placement, the machine's state at the time).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hrvs_ray.cluster import zygote  # noqa: E402
from hrvs_ray.config import DatasetSpec, load_sweep  # noqa: E402
from hrvs_ray.data.inputs import PreparedSet  # noqa: E402
from hrvs_ray.data.mame import open_dataset  # noqa: E402
from hrvs_ray.metrics import figure  # noqa: E402
from hrvs_ray.metrics.interval import ratio_interval, run_spread  # noqa: E402
from hrvs_ray.node.topology import read_topology, resolve_scope  # noqa: E402
from hrvs_ray.plan.cells import CellSpec, plan_cells  # noqa: E402


def cells_of(sweep_path: Path, sets: list[str]) -> tuple[list[CellSpec], DatasetSpec]:
    """The paper setup's cell of each input set at the sweep's first scope, run 0."""
    sweep = load_sweep(sweep_path)
    cells = [c for c in plan_cells(sweep, ["local"]) if c.run == 0 and c.remedy.is_paper
             and c.scope == sweep.scopes[0] and c.input_set.name in sets]
    ds = sweep.dataset
    return cells, replace(ds, path=str(REPO / ds.path), cache=str(REPO / ds.cache))


def prepare(cells: list[CellSpec], dataset: DatasetSpec) -> None:
    """Generate the dataset and cache the input sets once, so no cell pays for it."""
    from hrvs_ray.train.cell import cell_batches

    data = open_dataset(dataset)
    for c in cells:
        ids = sorted({i for b in cell_batches(c, data) for i in b})
        PreparedSet(data, c.input_set, Path(dataset.cache)).prepare(ids, workers=1)


def run_cell(cell: CellSpec, dataset: DatasetSpec, token: str) -> pd.DataFrame:
    """The cell in a fresh fork of this machine's zygote, as a sweep's actor has it run."""
    placement = resolve_scope(read_topology("/"), cell.scope, allowed=os.sched_getaffinity(0))
    conn = zygote.connect(token, "local", placement, cell.remedy.kernel_cache)
    try:
        outcome = zygote.run_forked(conn, (cell, dataset, "local"))
    finally:
        conn.close()
    if outcome.status != "ok":
        raise SystemExit(f"cell {cell.cell_id} failed: {outcome.error}")
    cols = ["run", "step", "warmup", "seconds", "total_px", "informative_px", "padding_px", "batch_fingerprint"]
    return outcome.steps.select(cols).to_pandas()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", default=str(REPO / "sweeps" / "quick-remedies.yaml"))
    ap.add_argument("--cells", type=int, default=10, help="independent cells per input set")
    ap.add_argument("--sets", default="MR&VS,HR&VS")
    ap.add_argument("--name", default="s_per_informative_mp", choices=("s_per_mp", "s_per_informative_mp"))
    ap.add_argument("--save", metavar="FILE", help="write every cell's step rows here as JSON")
    a = ap.parse_args()
    cells, dataset = cells_of(Path(a.sweep), [s for s in a.sets.split(",") if s])
    if not cells:
        raise SystemExit(f"{a.sweep}: no paper-setup cell for input sets {a.sets}")
    prepare(cells, dataset)
    t0 = time.perf_counter()
    got: dict[str, list[pd.DataFrame]] = {c.input_set.name: [] for c in cells}
    token = uuid.uuid4().hex[:12]
    try:
        for _ in range(a.cells):   # interleaved, so a slow drift of the machine hits every set alike
            for c in cells:
                got[c.input_set.name].append(run_cell(c, dataset, token))
    finally:
        zygote.stop_all(token)
    print(f"{a.sweep}: {cells[0].warmup_steps} warm-up + {cells[0].steps} timed steps per cell, {a.cells} "
          f"independent cells per input set, {time.perf_counter() - t0:.0f} s")
    if a.save:
        Path(a.save).write_text(json.dumps({n: [r.to_dict("records") for r in rs] for n, rs in got.items()}))
    report(got, a.name)


def _spread_without(runs: list[pd.DataFrame], i: int, j: int, name: str) -> float | None:
    """The run-to-run spread of the set's other cells, as if they were runs of one group."""
    rest = [r.assign(run=k, g=0) for k, r in enumerate(runs) if k not in (i, j)]
    return run_spread(pd.concat(rest), ["g"], name) if len(rest) > 1 else None


def report(got: dict[str, list[pd.DataFrame]], name: str) -> None:
    total = {"one run": [0, 0], "run-to-run spread known": [0, 0]}
    for iset, runs in got.items():
        values = pd.Series([figure(r[~r["warmup"]], name) for r in runs])
        fps = {tuple(r["batch_fingerprint"]) for r in runs}
        cv = values.std() / values.mean()
        print(f"  {iset}: {name} per cell {values.min():.4g}–{values.max():.4g} (CV {cv:.1%}); "
              f"same batches in every cell: {len(fps) == 1}")
        for how in total:
            found = [ratio_interval(runs[i], runs[j], name, _spread_without(runs, i, j, name) if how != "one run"
                                    else None) for i, j in itertools.combinations(range(len(runs)), 2)]
            n = sum(not iv.includes_one for iv in found)
            total[how][0] += n
            total[how][1] += len(found)
            print(f"    {how}: median interval {pd.Series([iv.high / iv.low for iv in found]).median():.3f}× wide; "
                  f"{n} of {len(found)} pairs claim a difference")
    for how, (claims, pairs) in total.items():
        print(f"A/A false-positive rate ({how}): {claims} of {pairs} pairs = {claims / pairs:.1%} "
              f"(must be at most about 5 %)")


if __name__ == "__main__":
    main()
