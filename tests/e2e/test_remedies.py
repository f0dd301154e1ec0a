"""The remedies axes end to end: real Ray, real training, real parquet, the plan's pixels."""
from __future__ import annotations

import numpy as np
import pytest

from hrvs_ray.config import load_sweep
from hrvs_ray.data.shapes import read_metadata_csv, transformed_arrays
from hrvs_ray.plan.cells import plan_cells, step_plan
from hrvs_ray.plan.policies import step_pixel_stats
from hrvs_ray.store import read_results
from tests.helpers import hrvs, tiny_sweep_dict

pytestmark = pytest.mark.slow


def test_every_remedy_is_a_cell_with_its_columns_and_the_plans_pixels(tmp_path, write_sweep):
    d = tiny_sweep_dict(tmp_path, name="remedies",
                        input_sets={"MR&VS": {"resize": "shorter_side", "size": 40, "batch_size": 4}},
                        remedies={"batching": ["pad", "bucket", "accumulate"], "precision": ["float32", "bfloat16"],
                                  "window": 2},
                        execution={"cell_timeout_s": 300, "retries": 1, "release_heap": True})
    path = write_sweep(d)
    out = tmp_path / "results"
    r = hrvs("sweep", str(path), "--out", str(out), "--no-progress", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bucket(w2)+bf16+nchw" in r.stderr             # each cell's line names its remedy
    res = read_results(out)
    cells = res.cells.to_pandas()
    assert len(cells) == 6 and (cells["status"] == "ok").all()
    assert sorted(cells["remedy"]) == sorted(["pad+fp32+nchw", "pad+bf16+nchw", "bucket(w2)+fp32+nchw",
                                              "bucket(w2)+bf16+nchw", "accum+fp32+nchw", "accum+bf16+nchw"])
    assert cells["cell_id"].nunique() == 6
    steps = res.steps.to_pandas()
    assert set(steps["precision"]) == {"float32", "bfloat16"}

    # the pixels every step recorded are the ones `hrvs-ray plan` computes for the same batches
    sweep = load_sweep(path)
    table = read_metadata_csv(tmp_path / "ds" / "MAMe_dataset.csv").select("train").sorted()
    h, w = transformed_arrays(sweep.input_sets[0], table.heights, table.widths)
    for cell in plan_cells(sweep, [steps["cluster"].iloc[0]]):
        s = steps[steps["cell_id"] == cell.cell_id].sort_values("step")
        planned = step_pixel_stats(h, w, step_plan(cell, table.heights, table.widths), cell.remedy)
        for k in ("informative", "padding", "total"):
            assert np.array_equal(s[f"{k}_px"].to_numpy(), planned[k]), (cell.remedy.label, k)
        idx = step_plan(cell, table.heights, table.widths)
        assert [list(x) for x in s["image_ids"]] == [[table.ids[i] for i in row] for row in idx.tolist()]

    # every policy trained on pad's images (issue 16): per cell the same multiset of recorded
    # ids, for the warm-up and for the timed steps
    bags = {(cid, warm): sorted(i for ids in g["image_ids"] for i in ids)
            for (cid, warm), g in steps.groupby(["cell_id", "warmup"])}
    assert len({tuple(v) for (_, warm), v in bags.items() if warm}) == 1
    assert len({tuple(v) for (_, warm), v in bags.items() if not warm}) == 1
    assert all(i.endswith(".jpg") for v in bags.values() for i in v)     # literal file names

    pad = steps[steps["remedy"] == "pad+fp32+nchw"].sort_values("step")
    acc = steps[steps["remedy"] == "accum+fp32+nchw"].sort_values("step")
    assert (acc["padding_px"] == 0).all() and (acc["micro_batches"] == 4).all()
    assert acc["informative_px"].tolist() == pad["informative_px"].tolist()   # the paper's images
    assert (steps["growth_bytes"] == steps["peak_rss_bytes"] - steps["rss_start_bytes"]).all()
    assert (steps["peak_rss_scope"] == "step, free heap released first").all()    # execution.release_heap
    assert (cells["baseline_rss_bytes"] > 0).all()

    again = hrvs("sweep", str(path), "--out", str(out), "--no-progress", "--no-report", cwd=tmp_path,
                 timeout=600)
    assert again.returncode == 0 and "6 cells: 6 already done" in again.stdout

    # the sweep stored a memory fit of its own steps; plan can use it
    assert (out / "memory_fit.json").is_file()
    p = hrvs("plan", str(path), "--memory-from", str(out), cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"calibrated on {out}" in p.stdout and "float32/contiguous/none" in p.stdout
