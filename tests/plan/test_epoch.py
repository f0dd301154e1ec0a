"""Sampled steps vs a full epoch: padding and label diversity from metadata (pure)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hrvs_ray.config import load_sweep, parse_sweep
from hrvs_ray.data.shapes import read_metadata_csv
from hrvs_ray.plan.epoch import diversity_sentence, label_diversity, less_diverse, policy_views
from hrvs_ray.plan.table import batch_table, planning_shapes
from tests.helpers import MAME_CSV, REPO, tiny_sweep_dict


def test_label_diversity_counts_classes_and_the_largest_share_per_step():
    labels = np.array([0, 0, 1, 2, 2, 2])
    idx = np.array([[0, 1, 2], [3, 4, 5], [0, 2, 3]])      # classes {0,0,1}, {2,2,2}, {0,1,2}
    d = label_diversity(idx, labels)
    assert d == {"mean_classes": 2.0, "min_classes": 1.0, "mean_top_share": pytest.approx((2 / 3 + 1 + 1 / 3) / 3),
                 "max_top_share": 1.0}


def test_less_diverse_needs_a_marked_drop_or_a_single_class_batch():
    pad = {"mean_classes": 19.5, "min_classes": 14, "mean_top_share": 0.12, "max_top_share": 0.25}
    assert not less_diverse(dict(pad, mean_classes=18.0), pad)           # 8 % fewer: not marked
    assert less_diverse(dict(pad, mean_classes=17.0), pad)               # 13 % fewer
    assert less_diverse(dict(pad, min_classes=1), pad)                   # a batch of one medium
    assert diversity_sentence("MR&VS", "pad", pad, pad, 32) is None
    s = diversity_sentence("MR&VS", "bucket", dict(pad, mean_classes=15.6, min_classes=1, max_top_share=1.0), pad, 32)
    assert "15.6 distinct classes per batch of 32 on average (pad 19.5)" in s and "single class" in s


def test_plan_shows_sampled_and_epoch_views_for_every_policy():
    sweep = load_sweep(REPO / "sweeps" / "quick-remedies.yaml")
    shapes, where = planning_shapes(sweep)
    t = batch_table(sweep, 10, shapes)
    assert sweep.remedies.micro_batch == 2      # the shipped file (one image alone is too small)
    one = batch_table(replace(sweep, remedies=replace(sweep.remedies, micro_batch=1)), 10, shapes)
    for name in ("MR&VS", "HR&VS"):
        pad, bucket, acc = (t[f"{name} [{b}]"] for b in ("pad", "bucket", "accumulate"))
        assert pad["sampled"]["steps"] == sweep.training.steps * sweep.training.runs
        assert pad["epoch"]["steps"] == len(shapes) // pad["batch_size"]
        # the same images: pixels and labels of pad's and accumulate's steps are the same steps
        assert acc["sampled"]["labels"] == pad["sampled"]["labels"]
        assert (acc["sampled"]["informative_px"] == pad["sampled"]["informative_px"]
                == bucket["sampled"]["informative_px"])
        # Less padding on the same images for MR&VS. Two timed steps of 4 HR&VS images per run
        # leave bucket little to regroup, and its aspect-first order can then pad a little
        # more than pad (shipped file: 63.5 % vs 62.9 %); over an epoch it pads less, and
        # tests/plan/test_policies.py checks a strict drop on designed shapes
        assert name == "HR&VS" or bucket["sampled"]["padding_share"] < pad["sampled"]["padding_share"]
        assert bucket["epoch"]["padding_share"] < pad["epoch"]["padding_share"]
        # accumulate pads only inside each micro-batch: none at all with micro-batches of one
        assert 0 < acc["epoch"]["padding_share"] < pad["epoch"]["padding_share"]
        assert one[f"{name} [accumulate]"]["epoch"]["padding_share"] == 0
        assert bucket["epoch"]["window"] == sweep.remedies.window and pad["epoch"]["window"] is None


@pytest.mark.skipif(not MAME_CSV.is_file(), reason=f"real MAMe metadata not at {MAME_CSV}")
def test_real_mame_bucket_makes_mr_vs_batches_less_diverse(tmp_path):
    shapes = read_metadata_csv(MAME_CSV).select("train").sorted()
    d = tiny_sweep_dict(tmp_path)
    d["dataset"] = {"kind": "mame", "path": str(MAME_CSV.parent)}
    d["input_sets"] = {"MR&VS": {"resize": "shorter_side", "size": 500, "batch_size": 32}}
    d["training"] = {"warmup_steps": 1, "steps": 10, "runs": 3, "seed": 2021}
    d["remedies"] = {"batching": ["pad", "bucket"], "window": 64}
    v = policy_views(parse_sweep(d), shapes)
    pad, bucket = v[("MR&VS", "pad")]["epoch"], v[("MR&VS", "bucket")]["epoch"]
    # the figures (600 batches there, the whole epoch of 634 here)
    assert pad["labels"]["min_classes"] == 14 and abs(pad["labels"]["mean_classes"] - 19.5) < 0.1
    assert pad["labels"]["max_top_share"] == 0.25
    assert bucket["labels"]["min_classes"] == 1 and bucket["labels"]["mean_classes"] < 16
    assert less_diverse(bucket["labels"], pad["labels"])
    # sampled bucket regroups 10 steps per run: far less padding cut than over a full epoch
    assert bucket["padding_share"] < 0.11 < 0.30 < v[("MR&VS", "bucket")]["sampled"]["padding_share"]
