"""Batching policies: bucket and accumulate, pure and deterministic (no torch, no ray)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hrvs_ray.config import InputSetSpec, parse_sweep
from hrvs_ray.data.shapes import read_metadata_csv, transformed_arrays
from hrvs_ray.plan.padding import pixel_stats
from hrvs_ray.plan.policies import aspect_class, epoch_indices, micro_slices, step_indices, step_pixel_stats
from hrvs_ray.plan.seeded_order import batch_indices, epoch_permutation
from hrvs_ray.plan.table import batch_table
from hrvs_ray.remedy_axes import Remedy
from tests.helpers import MAME_CSV, tiny_sweep_dict

RNG = np.random.default_rng(4)
H = RNG.integers(20, 400, 500)
W = RNG.integers(20, 400, 500)


def test_bucket_epoch_uses_every_image_of_each_window_exactly_once():
    bs, window = 4, 8
    per_epoch = len(H) // bs                          # 125 batches: 15 full windows + 5 batches
    idx = epoch_indices(Remedy(batching="bucket", window=window), H, W, 3, 1, bs)
    perm = epoch_permutation(len(H), 3, 1, 0)[: per_epoch * bs]
    assert idx.shape == (per_epoch, bs)
    assert sorted(idx.ravel().tolist()) == sorted(perm.tolist())       # the epoch, each image once
    span = window * bs
    windows = [set(perm[s:s + span].tolist()) for s in range(0, len(perm), span)]
    for row in idx:                                   # a batch never mixes two windows
        assert sum(set(row.tolist()) <= w for w in windows) == 1
    first = sorted(perm[:span].tolist(), key=lambda i: (aspect_class(H[[i]], W[[i]])[0], H[i] * W[i], i))
    assert {tuple(first[k:k + bs]) for k in range(0, span, bs)} <= {tuple(r.tolist()) for r in idx}
    assert np.array_equal(epoch_indices(Remedy(), H, W, 3, 1, bs), perm.reshape(-1, bs))   # pad: the paper


def test_every_policy_trains_on_pads_warmup_and_timed_images():
    bucket, acc = Remedy(batching="bucket", window=4), Remedy(batching="accumulate", micro_batch=2)
    for n, warm in ((12, 2), (200, 3), (5, 0)):       # 200 steps of 4 cross into a second epoch
        pad = step_indices(Remedy(), H, W, 3, 1, 4, n, warm)
        for policy in (bucket, acc):
            got = step_indices(policy, H, W, 3, 1, 4, n, warm)
            assert got.shape == pad.shape
            assert sorted(got[:warm].ravel().tolist()) == sorted(pad[:warm].ravel().tolist())
            assert sorted(got[warm:].ravel().tolist()) == sorted(pad[warm:].ravel().tolist())
        b = step_indices(bucket, H, W, 3, 1, 4, n, warm)
        assert all(len(set(r)) == 4 for r in b.tolist())   # windows never span epochs: no repeats
    assert np.array_equal(step_indices(acc, H, W, 3, 1, 4, 12, 2), step_indices(Remedy(), H, W, 3, 1, 4, 12, 2))


def test_paired_bucket_still_regroups_and_follows_seed_and_window():
    spec = Remedy(batching="bucket", window=16)
    pad = step_indices(Remedy(), H, W, 1, 0, 8, 50, 2)
    b = step_indices(spec, H, W, 1, 0, 8, 50, 2)
    assert not np.array_equal(np.sort(b, axis=1), np.sort(pad, axis=1))    # batches were regrouped
    sb, sp = step_pixel_stats(H, W, b, spec), step_pixel_stats(H, W, pad, Remedy())
    assert sb["padding"][2:].sum() / sb["total"][2:].sum() < sp["padding"][2:].sum() / sp["total"][2:].sum() - 0.15
    assert not np.array_equal(b, step_indices(spec, H, W, 2, 0, 8, 50, 2))           # seed matters
    assert not np.array_equal(b, step_indices(Remedy("bucket", window=4), H, W, 1, 0, 8, 50, 2))  # window


def test_bucket_cuts_padding_and_pad_is_the_papers_plan():
    spec = Remedy(batching="bucket", window=16)
    pad = step_indices(Remedy(), H, W, 1, 0, 8, 50)
    assert np.array_equal(pad, batch_indices(len(H), 1, 0, 8, 50))
    b = step_pixel_stats(H, W, epoch_indices(spec, H, W, 1, 0, 8), spec)
    p = step_pixel_stats(H, W, epoch_indices(Remedy(), H, W, 1, 0, 8), Remedy())
    assert b["padding"].sum() / b["total"].sum() < p["padding"].sum() / p["total"].sum() - 0.15


def test_bucket_plan_is_identical_in_another_process():
    code = ("import numpy as np; from hrvs_ray.plan.policies import step_indices; "
            "from hrvs_ray.remedy_axes import Remedy;"
            "r=np.random.default_rng(4); h=r.integers(20,400,500); w=r.integers(20,400,500);"
            "print(step_indices(Remedy('bucket', window=8), h, w, 9, 2, 4, 40, 3).tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"OMP_NUM_THREADS": n, "PATH": "/usr/bin", "PYTHONPATH": "."}).stdout
            for n in ("1", "2")}
    assert outs == {str(step_indices(Remedy("bucket", window=8), H, W, 9, 2, 4, 40, 3).tolist()) + "\n"}


def test_aspect_class_is_exact_at_the_bin_edges():
    h = np.array([100, 200, 100, 50, 1189, 1190, 840, 841])
    w = np.array([100, 100, 200, 100, 1000, 1000, 1000, 1000])
    # 2^(1/4) = 1.18920..: 1189/1000 is just below class 1, 1190/1000 just inside;
    # 2^(-1/4) = 0.84089..: 840/1000 is in class -2, 841/1000 in class -1
    assert aspect_class(h, w).tolist() == [0, 4, -4, -4, 0, 1, -2, -1]


def test_accumulate_keeps_the_papers_images_and_removes_padding_at_micro_batch_1():
    acc = Remedy(batching="accumulate", micro_batch=1)
    idx = step_indices(acc, H, W, 1, 0, 8, 30)
    assert np.array_equal(idx, batch_indices(len(H), 1, 0, 8, 30))
    s = step_pixel_stats(H, W, idx, acc)
    assert (s["padding"] == 0).all()
    assert np.array_equal(s["informative"], pixel_stats(H, W, idx)["informative"])
    assert np.array_equal(s["largest_pass"], (H[idx] * W[idx]).max(axis=1))


def test_accumulate_with_the_whole_batch_is_the_pad_step():
    whole = Remedy(batching="accumulate", micro_batch=8)
    idx = step_indices(whole, H, W, 1, 0, 8, 30)
    a, p = step_pixel_stats(H, W, idx, whole), step_pixel_stats(H, W, idx, Remedy())
    assert all(np.array_equal(a[k], p[k]) for k in a)
    assert micro_slices(8, whole) == [slice(0, 8)]
    assert micro_slices(7, Remedy(batching="accumulate", micro_batch=3)) == [slice(0, 3), slice(3, 6), slice(6, 7)]


@pytest.mark.skipif(not MAME_CSV.is_file(), reason=f"real MAMe metadata not at {MAME_CSV}")
@pytest.mark.slow
def test_real_mame_padding_per_policy_matches_the_issue(tmp_path):
    shapes = read_metadata_csv(MAME_CSV).select("train").sorted()
    d = tiny_sweep_dict(tmp_path)
    d["dataset"] = {"kind": "mame", "path": str(MAME_CSV.parent)}
    d["input_sets"] = {"MR&VS": {"resize": "shorter_side", "size": 500, "batch_size": 32},
                       "HR&VS": {"resize": "none", "batch_size": 4}}
    d["training"]["seed"] = 2021
    d["remedies"] = {"batching": ["pad", "bucket", "accumulate"]}
    table = batch_table(parse_sweep(d), 2000, shapes)
    share = {k: e["padding"]["avg"] / e["total"]["avg"] for k, e in table.items()}
    assert 0.75 <= share["MR&VS [pad]"] <= 0.80
    assert share["MR&VS [bucket]"] <= 0.10
    assert share["MR&VS [accumulate]"] == 0 and share["HR&VS [accumulate]"] == 0
    assert share["HR&VS [bucket]"] < share["HR&VS [pad]"] - 0.15
    assert {e["batching"] for e in table.values()} == {"pad", "bucket", "accumulate"}


def test_transformed_shapes_feed_the_bucket_key():
    iset = InputSetSpec("MR&VS", "shorter_side", 4, (50,))
    h, w = transformed_arrays(iset, H, W)
    assert (np.minimum(h, w) == 50).all()
    assert step_indices(Remedy("bucket", window=4), h, w, 1, 0, 4, 10, 2).shape == (10, 4)


def test_micro_batches_of_one_tiny_image_are_refused_before_anything_runs(tmp_path):
    from hrvs_ray.config import SweepError
    from hrvs_ray.plan.table import check_passes, planning_shapes

    d = tiny_sweep_dict(tmp_path)          # MR&VS shorter side 32: square images become 32x32
    d["remedies"] = {"batching": ["pad", "accumulate"]}
    sweep = parse_sweep(d, "s.yaml")
    shapes, where = planning_shapes(sweep)
    with pytest.raises(SweepError,
                       match=r"s.yaml: remedies.micro_batch: 1 leaves passes of one image in input set .LR&FS."):
        check_passes(sweep, shapes, where)
    d["remedies"]["micro_batch"] = 2
    check_passes(parse_sweep(d, "s.yaml"), shapes, where)
