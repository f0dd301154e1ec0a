"""The plan's table (the paper's Table 1) from the shipped MAMe shapes, and ``hrvs-ray plan``."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hrvs_ray.config import InputSetSpec, load_sweep
from hrvs_ray.data.shapes import read_metadata_csv, shipped_shape_table, transformed_shape
from hrvs_ray.plan.table import batch_table
from tests.helpers import MAME_CSV, REPO


def test_shipped_shape_table_is_the_real_mame_metadata():
    t = shipped_shape_table()
    assert len(t) == 37407
    assert len(t.select("train")) == 20300
    assert int((t.widths * t.heights).max()) == 372_978_396   # MAMe's largest image, 373 MP
    if MAME_CSV.is_file():
        real = read_metadata_csv(MAME_CSV)
        assert real.ids == t.ids and (real.widths == t.widths).all() and (real.heights == t.heights).all()


@pytest.mark.parametrize("h, w, expect", [(1000, 2000, (500, 1000)), (2000, 1000, (1000, 500)),
                                          (700, 700, (500, 500)), (3, 1001, (500, 166833)),
                                          (999, 1000, (500, 501))])   # 500.5 rounds half up
def test_shorter_side_rounding(h, w, expect):
    spec = InputSetSpec("MR", "shorter_side", 32, (500,))
    assert transformed_shape(spec, h, w) == expect


def test_full_plan_reproduces_table_1():
    sweep = load_sweep(REPO / "sweeps" / "full.yaml")
    t = batch_table(sweep, 10)
    lr, mr = t["LR&FS"], t["MR&VS"]
    assert round(lr["informative"]["avg"], 1) == 67.1 and lr["padding"]["max"] == 0
    assert abs(mr["informative"]["avg"] - 11.5) < 0.6          # paper: 10.9 / 11.5 / 12.1
    assert mr["padding"]["avg"] > mr["informative"]["avg"]      # padding exceeds content
    big = batch_table(sweep, 2000)
    hr_big = big["HR&VS"]
    # the paper's 10 HR&VS batches (16.8 / 34.6 / 73.8 informative MP) lie inside our spread
    assert hr_big["informative"]["min"] < 16.8 and hr_big["informative"]["max"] > 73.8
    assert 25 < hr_big["informative"]["avg"] < 50


def test_plan_padding_share_is_the_ratio_of_sums():
    # Σ padding ÷ Σ total over the planned steps, the statistic the report uses too; with
    # equal step counts it equals avg ÷ avg, and differs from the mean of per-step shares
    import numpy as np

    from hrvs_ray.data.shapes import transformed_arrays
    from hrvs_ray.plan.policies import step_indices, step_pixel_stats

    sweep = load_sweep(REPO / "sweeps" / "full.yaml")
    t = batch_table(sweep, 50)
    for name in ("MR&VS", "HR&VS"):
        e = t[name]
        assert e["padding_share"] == pytest.approx(e["padding"]["avg"] / e["total"]["avg"], rel=1e-9)
    iset = next(i for i in sweep.input_sets if i.name == "HR&VS")
    shapes = shipped_shape_table().select(sweep.dataset.subset).sorted()
    h, w = transformed_arrays(iset, shapes.heights, shapes.widths)
    remedy = sweep.remedies.combinations()[0]
    stats = step_pixel_stats(h, w, step_indices(remedy, h, w, sweep.training.seed, 0, iset.batch_size, 50), remedy)
    mean_of_shares = float(np.mean(np.asarray(stats["padding"]) / np.asarray(stats["total"])))
    assert abs(t["HR&VS"]["padding_share"] - mean_of_shares) > 1e-3


@pytest.mark.slow
def test_plan_cli_json_imports_neither_torch_nor_ray(tmp_path):
    # its speed is measured by benchmarks/plan_speed.py, not asserted here
    code = ("import sys, runpy; sys.argv=['hrvs-ray','plan','sweeps/full.yaml','--batches','2000','--format','json'];"
            "from hrvs_ray.cli import main; rc = main();"
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules"
            " and 'PIL' not in sys.modules, 'heavy import';"
            "sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {"LR&FS", "MR&VS", "HR&VS"}
    for entry in data.values():
        assert {"batch_size", "informative", "padding", "total"} <= set(entry)
        assert set(entry["total"]) == {"min", "avg", "max"}
        for view in ("sampled", "epoch"):       # README: "plan --format json"
            assert {"steps", "informative_px", "total_px", "padding_share", "labels"} <= set(entry[view])
            assert set(entry[view]["labels"]) == {"mean_classes", "min_classes", "mean_top_share", "max_top_share"}
