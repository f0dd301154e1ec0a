"""Issue 17 end to end: real Ray, real training, real parquet. The kernel-cache setting
reaches the cell's own process, rounding keeps the plan's exact pixels, and every step
records the distinct pass shapes the plan predicts."""
from __future__ import annotations

import numpy as np
import pytest

from hrvs_ray.config import load_sweep
from hrvs_ray.data.shapes import read_metadata_csv, transformed_arrays
from hrvs_ray.plan.cells import plan_cells, step_plan
from hrvs_ray.plan.policies import step_pixel_stats
from hrvs_ray.plan.shape_diversity import distinct_counts, step_pass_shapes
from hrvs_ray.store import read_results
from tests.helpers import hrvs, tiny_sweep_dict

pytestmark = pytest.mark.slow


def test_rounded_cells_without_caches_record_the_plans_pixels_and_shapes(tmp_path, write_sweep):
    d = tiny_sweep_dict(tmp_path, name="kc",
                        input_sets={"MR&VS": {"resize": "shorter_side", "size": 40, "batch_size": 4}},
                        remedies={"batching": ["pad", "bucket", "accumulate"], "kernel_cache": False,
                                  "shape_round": [16], "window": 2, "micro_batch": 2},
                        training={"warmup_steps": 1, "steps": 3, "runs": 1, "seed": 7})
    path = write_sweep(d)
    out = tmp_path / "results"
    r = hrvs("sweep", str(path), "--out", str(out), "--no-progress", "--no-report", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    res = read_results(out)
    cells, steps = res.cells.to_pandas(), res.steps.to_pandas()
    assert len(cells) == 3 and (cells["status"] == "ok").all(), cells["error"].tolist()
    assert set(cells["kernel_cache"]) == {"off"} and set(cells["shape_round"]) == {16}
    assert set(cells["allocator"]) == {"glibc"}
    assert set(steps["kernel_cache"]) == {"off"} and set(steps["shape_round"]) == {16}
    assert (steps["batch_height"] % 16 == 0).all() and (steps["batch_width"] % 16 == 0).all()

    sweep = load_sweep(path)
    table = read_metadata_csv(tmp_path / "ds" / "MAMe_dataset.csv").select("train").sorted()
    h, w = transformed_arrays(sweep.input_sets[0], table.heights, table.widths)
    for cell in plan_cells(sweep, [steps["cluster"].iloc[0]]):
        s = steps[steps["cell_id"] == cell.cell_id].sort_values("step")
        idx = step_plan(cell, table.heights, table.widths)
        planned = step_pixel_stats(h, w, idx, cell.remedy)
        for k in ("informative", "padding", "total"):
            assert np.array_equal(s[f"{k}_px"].to_numpy(), planned[k]), (cell.remedy.label, k)
        seen = distinct_counts(step_pass_shapes(h, w, idx, cell.remedy))
        assert s["distinct_shapes_seen"].tolist() == seen.tolist(), cell.remedy.label
        assert s["new_shape"].tolist() == (np.diff(seen, prepend=0) > 0).tolist()
