"""Issue 17: the kernel-cache and shape-rounding axes, distinct pass shapes, the allocator."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from hrvs_ray.config import SweepError, parse_sweep
from hrvs_ray.plan.cells import plan_cells
from hrvs_ray.plan.padding import geometry, pixel_stats, round_up
from hrvs_ray.plan.policies import step_indices, step_pixel_stats
from hrvs_ray.plan.shape_diversity import ShapeCounter, distinct_counts, step_pass_shapes
from hrvs_ray.plan.table import batch_table
from hrvs_ray.probes.allocator import detect_allocator
from hrvs_ray.remedy_axes import Remedy
from tests.helpers import REPO, tiny_sweep_dict


def _sweep(tmp_path, remedies=None, **over):
    d = tiny_sweep_dict(tmp_path, **over)
    if remedies is not None:
        d["remedies"] = remedies
    return parse_sweep(d, "k.yaml")


def test_bare_yaml_off_is_the_off_setting_and_on_is_refused(tmp_path):
    assert _sweep(tmp_path, {"kernel_cache": False}).remedies.kernel_cache == ("off",)
    assert _sweep(tmp_path, {"kernel_cache": ["default", False]}).remedies.kernel_cache == ("default", "off")
    with pytest.raises(SweepError, match=r"k.yaml: remedies.kernel_cache: true/on is not a value"):
        _sweep(tmp_path, {"kernel_cache": True})
    with pytest.raises(SweepError, match=r"remedies.kernel_cache\[1\]: duplicate"):
        _sweep(tmp_path, {"kernel_cache": ["off", "off"]})
    with pytest.raises(SweepError, match=r"remedies.kernel_cache: must be one of default, off"):
        _sweep(tmp_path, {"kernel_cache": "small"})


def test_kernel_cache_off_is_refused_on_cuda(tmp_path):
    with pytest.raises(SweepError, match=r"remedies.kernel_cache: 'off' empties PyTorch's CPU kernel caches.*cuda"):
        _sweep(tmp_path, {"kernel_cache": "off"}, model={"device": "cuda"})
    assert _sweep(tmp_path, {"kernel_cache": "default"}, model={"device": "cuda"}).remedies.kernel_cache == ("default",)


@pytest.mark.parametrize("value, expect", [("none", (0,)), (32, (32,)), (["none", 32, 64], (0, 32, 64))])
def test_shape_round_values(tmp_path, value, expect):
    assert _sweep(tmp_path, {"shape_round": value}).remedies.shape_round == expect


@pytest.mark.parametrize("value, problem", [(1, "must be >= 2"), ("big", "must be none or a multiple"),
                                            ([], "non-empty list"), ([32, 32], "duplicate"),
                                            (True, "got a boolean")])
def test_shape_round_bad_values_name_the_key(tmp_path, value, problem):
    with pytest.raises(SweepError, match=r"k.yaml: remedies.shape_round(\[\d\])?: .*" + problem):
        _sweep(tmp_path, {"shape_round": value})


def test_default_settings_keep_ids_and_fingerprints(tmp_path):
    for base in (None, {"batching": ["pad", "bucket"], "window": 2}):
        plain = _sweep(tmp_path, base)
        explicit = _sweep(tmp_path, {**(base or {}), "kernel_cache": "default", "shape_round": "none"})
        assert plain.fingerprint() == explicit.fingerprint()
        assert [c.cell_id for c in plan_cells(plain, ["c"])] == [c.cell_id for c in plan_cells(explicit, ["c"])]
        assert ([c.remedy.label for c in plan_cells(plain, ["c"])]
                == [c.remedy.label for c in plan_cells(explicit, ["c"])])


def test_non_default_settings_enter_ids_and_labels(tmp_path):
    s = _sweep(tmp_path, {"kernel_cache": ["default", "off"], "shape_round": ["none", 32]})
    cells = [c for c in plan_cells(s, ["c"]) if c.input_set.name == "MR&VS"]
    assert [c.remedy.label for c in cells] == ["pad+fp32+nchw", "pad(r32)+fp32+nchw", "pad+fp32+nchw+kc-off",
                                               "pad(r32)+fp32+nchw+kc-off"]
    assert len({c.cell_id for c in cells}) == 4
    plain = [c for c in plan_cells(_sweep(tmp_path), ["c"]) if c.input_set.name == "MR&VS"]
    assert cells[0].cell_id.split(".")[:-1] == plain[0].cell_id.split(".")[:-1]   # same readable name
    assert Remedy(kernel_cache="off").id_params() == {"batching": "pad", "precision": "float32",
                                                      "memory_format": "contiguous", "checkpointing": "none",
                                                      "kernel_cache": "off"}
    assert "kernel_cache" not in Remedy(batching="bucket").id_params()


def test_rounded_geometry_keeps_exact_pixel_accounting():
    shapes = {"a": (33, 50), "b": (20, 70)}
    g = geometry(["a", "b"], shapes, 32)
    assert (g.height, g.width) == (64, 96)
    assert g.informative_px == 33 * 50 + 20 * 70 and g.total_px == 2 * 64 * 96
    assert g.padding_px == g.total_px - g.informative_px
    assert g.placements[0].top == (64 - 33) // 2 and g.placements[1].left == (96 - 70) // 2
    assert geometry(["a", "b"], shapes).height == 33 and round_up(64, 32) == 64 and round_up(5, 0) == 5
    h, w = np.array([33, 20]), np.array([50, 70])
    st = pixel_stats(h, w, np.array([[0, 1]]), 32)
    assert (st["total"][0], st["informative"][0], st["padding"][0]) == (g.total_px, g.informative_px, g.padding_px)


@pytest.mark.parametrize("batching", ["pad", "bucket", "accumulate"])
def test_plan_pixels_and_pass_shapes_agree_with_the_collated_geometry(batching):
    rng = np.random.default_rng(3)
    h, w = rng.integers(40, 200, 64), rng.integers(40, 200, 64)
    remedy = Remedy(batching=batching, window=2, micro_batch=3, shape_round=32)
    idx = step_indices(remedy, h, w, 1, 0, 4, 12)
    stats = step_pixel_stats(h, w, idx, remedy)
    passes = step_pass_shapes(h, w, idx, remedy)
    shapes = {str(i): (int(h[i]), int(w[i])) for i in range(64)}
    for k, row in enumerate(idx):
        parts = [row[:3], row[3:]] if batching == "accumulate" else [row]
        geoms = [geometry([str(i) for i in p], shapes, 32) for p in parts]
        assert stats["total"][k] == sum(g.total_px for g in geoms)
        assert stats["informative"][k] == sum(g.informative_px for g in geoms)
        assert passes[k] == [(g.batch_size, g.height, g.width) for g in geoms]
        assert all(g.height % 32 == 0 and g.width % 32 == 0 for g in geoms)


def test_distinct_shapes_are_counted_cumulatively():
    c = ShapeCounter()
    assert c.see([(2, 32, 32)]) == (1, True)
    assert c.see([(2, 32, 32), (1, 32, 32)]) == (2, True)   # one new micro-batch shape
    assert c.see([(2, 32, 32)]) == (2, False)
    assert distinct_counts([[(1, 2, 3)], [(1, 2, 3)], [(1, 2, 4)]]).tolist() == [1, 1, 2]


@pytest.mark.slow
def test_rounding_leaves_fewer_distinct_shapes_and_plan_shows_both(tmp_path):
    s = _sweep(tmp_path, {"batching": ["pad", "bucket"], "shape_round": ["none", 16], "window": 2})
    t = batch_table(s, 40)
    for iset in ("MR&VS", "HR&VS"):
        for b in ("pad", "bucket"):
            raw, rnd = t[f"{iset} [{b}, no round]"], t[f"{iset} [{b}, round 16]"]
            assert rnd["distinct_shapes"] <= raw["distinct_shapes"]
            assert rnd["padding"]["avg"] >= raw["padding"]["avg"]
            assert rnd["informative"] == raw["informative"]    # rounding adds padding only
    plain = batch_table(_sweep(tmp_path), 10)
    assert "MR&VS" in plain and plain["MR&VS"]["distinct_shapes"] >= 1


def test_allocator_is_read_from_the_mapped_libraries_and_ld_preload():
    assert detect_allocator("7f00 r-xp /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n", "") == "jemalloc"
    assert detect_allocator("", "/usr/lib/libtcmalloc_minimal.so.4") == "tcmalloc"
    assert detect_allocator("7f00 r-xp /usr/lib/x86_64-linux-gnu/libc.so.6\n", "") == "glibc"
    assert detect_allocator() == "glibc"     # this interpreter: nothing preloaded


APPLY = r"""
import os, sys
from hrvs_ray.train.kernel_cache import KernelCacheError, apply_kernel_cache
if sys.argv[1] == "preload":
    import torch
try:
    apply_kernel_cache(sys.argv[2])
    print("ok", os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY"), os.environ.get("LRU_CACHE_CAPACITY"))
except KernelCacheError as e:
    print("refused", e)
"""


@pytest.mark.parametrize("preload, setting, expect", [
    ("fresh", "off", "ok 0 1"), ("fresh", "default", "ok None None"),
    ("preload", "off", "refused kernel_cache 'off' needs a process that has not imported torch yet"),
    ("preload", "default", "ok None None")])
@pytest.mark.slow
def test_the_setting_is_applied_before_torch_or_refused(preload, setting, expect):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "LRU_CACHE_CAPACITY": "7"} \
        if setting == "default" and preload == "fresh" else {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", APPLY, preload, setting], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(expect)


GROWTH = r"""
import json, os, sys
from hrvs_ray.train.kernel_cache import apply_kernel_cache
apply_kernel_cache(sys.argv[1])
import torch
from hrvs_ray.probes.memory import rss_bytes
torch.set_num_threads(1)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                          torch.nn.Flatten(), torch.nn.Linear(32, 4))
opt = torch.optim.Adam(net.parameters())
def step(h, w):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(torch.randn(2, 3, h, w)), torch.tensor([0, 1])).backward()
    opt.step()
shapes = [(40 + 4 * i, 48 + 6 * i) for i in range(20)]
for _ in range(3):
    step(*shapes[-1])          # the largest shape first: later steps need no more activation memory
start = rss_bytes()
for h, w in shapes:
    step(h, w)
repeat = rss_bytes()
for h, w in shapes:            # the same shapes again: cached kernels need no new memory
    step(h, w)
print(json.dumps({"varied": repeat - start, "again": rss_bytes() - repeat}))
"""


@pytest.mark.slow
def test_rss_growth_over_varied_shapes_differs_between_the_settings():
    """Echoing the variables proves nothing: with the caches on, 20 new shapes grow RSS by
    megabytes (a kernel per shape and layer); with them off it stays flat."""
    got = {}
    for setting in ("default", "off"):
        r = subprocess.run([sys.executable, "-c", GROWTH, setting], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, timeout=300)
        assert r.returncode == 0, r.stderr
        got[setting] = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["default"]["varied"] > 8e6, got
    assert got["off"]["varied"] < got["default"]["varied"] / 4, got



def test_plan_counts_the_shapes_the_sweeps_cells_meet() -> None:
    # `plan --batches N` for a sweep with warm-up must regroup warm-up and timed steps apart,
    # as every cell does (paired images): it once regrouped all N together and showed
    # MR&VS bucket meeting 36 shapes where the cells met 33
    from hrvs_ray.config import load_sweep
    from hrvs_ray.data.shapes import shipped_shape_table, transformed_arrays
    from hrvs_ray.plan.cells import step_plan

    sweep = load_sweep(REPO / "sweeps" / "kernel-cache.yaml")
    shapes = shipped_shape_table().select("train").sorted()
    n = sweep.training.warmup_steps + sweep.training.steps
    table = batch_table(sweep, n, shapes)
    for cell in plan_cells(sweep, ["local"]):
        if cell.remedy.kernel_cache != "default":
            continue
        h, w = transformed_arrays(cell.input_set, shapes.heights, shapes.widths)
        met = distinct_counts(step_pass_shapes(h, w, step_plan(cell, shapes.heights, shapes.widths), cell.remedy))[-1]
        rnd = f"round {cell.remedy.shape_round}" if cell.remedy.shape_round else "no round"
        assert table[f"{cell.input_set.name} [{cell.remedy.batching}, {rnd}]"]["distinct_shapes"] == met, cell.cell_id


def test_a_forked_cell_checks_that_its_kernel_cache_variables_are_the_settings(monkeypatch):
    from hrvs_ray.train.kernel_cache import kernel_cache_mismatch

    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "1")
    assert kernel_cache_mismatch("off") is None
    assert "wants" in kernel_cache_mismatch("default")
    monkeypatch.delenv("LRU_CACHE_CAPACITY")
    assert "LRU_CACHE_CAPACITY" in kernel_cache_mismatch("off")
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    assert kernel_cache_mismatch("default") is None
