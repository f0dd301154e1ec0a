"""Prepared input sets: shapes match the planner, the cache is reused, keyed and safe."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from hrvs_ray.config import DatasetSpec, InputSetSpec, SyntheticSpec
from hrvs_ray.data.inputs import PreparedSet, input_set_dir
from hrvs_ray.data.mame import Dataset, DatasetError, load_image, open_dataset
from hrvs_ray.data.synthetic import generate
from tests.helpers import REPO

SYN = SyntheticSpec(count=10, scale=0.04, seed=2)
LR = InputSetSpec("LR&FS", "fixed", 4, (24, 32))
MR = InputSetSpec("MR&VS", "shorter_side", 2, (20,))
HR = InputSetSpec("HR&VS", "none", 2)
ALL_SETS = (LR, MR, HR)


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Dataset:
    root = tmp_path_factory.mktemp("mame")
    generate(root, SYN)
    return open_dataset(DatasetSpec(kind="mame", path=str(root), subset="all"))


@pytest.mark.parametrize("spec", ALL_SETS, ids=lambda s: s.resize)
def test_prepared_arrays_have_the_planned_shape(ds, spec, tmp_path):
    ps = PreparedSet(ds, spec, tmp_path)
    for i in ds.table.ids:
        arr = ps.get(i)
        assert arr.dtype == np.uint8 and arr.shape == (*ps.shape(i), 3), i
        if spec.resize == "fixed":
            assert ps.shape(i) == (24, 32)
        elif spec.resize == "shorter_side":
            assert min(ps.shape(i)) == 20
        else:
            assert ps.shape(i) == ds.shapes[i]


def test_none_keeps_the_original_pixels(ds, tmp_path):
    ps = PreparedSet(ds, HR, tmp_path)
    for i in ds.table.ids[:3]:
        assert np.array_equal(ps.get(i), load_image(ds.image_path(i)))


def test_resize_is_antialiased_bilinear(ds, tmp_path):
    i = max(ds.table.ids, key=lambda k: ds.shapes[k][0] * ds.shapes[k][1])
    src = Image.open(ds.image_path(i)).convert("RGB")
    want = np.asarray(src.resize((32, 24), Image.Resampling.BILINEAR))
    got = PreparedSet(ds, LR, tmp_path).get(i)
    assert np.array_equal(got, want)
    # Antialiased: shrinking averages, so the result is much smoother than point sampling.
    nearest = np.asarray(src.resize((32, 24), Image.Resampling.NEAREST)).astype(float)
    assert np.abs(np.diff(got.astype(float), axis=1)).mean() < np.abs(np.diff(nearest, axis=1)).mean()


def test_second_prepare_decodes_nothing(ds, tmp_path):
    ids = list(ds.table.ids)
    first = PreparedSet(ds, MR, tmp_path).prepare(ids + ids[:2])  # duplicates count once
    assert (first.images, first.decoded, first.hits) == (len(ids), len(ids), 0)
    assert first.bytes == sum(3 * h * w for h, w in (PreparedSet(ds, MR, tmp_path).shape(i) for i in ids))
    again = PreparedSet(ds, MR, tmp_path)
    second = again.prepare(ids)
    assert (second.decoded, second.hits) == (0, len(ids))
    # Reading from the cache returns the same pixels without touching the JPEG.
    jpeg = ds.image_path(ids[0])
    saved = jpeg.read_bytes()
    try:
        jpeg.write_bytes(b"")  # any decode would now fail
        assert again.get(ids[0]).shape == (*again.shape(ids[0]), 3)
    finally:
        jpeg.write_bytes(saved)


def test_prepared_arrays_identical_across_fresh_caches(ds, tmp_path):
    for spec in ALL_SETS:
        a, b = PreparedSet(ds, spec, tmp_path / "a"), PreparedSet(ds, spec, tmp_path / "b")
        a.prepare(ds.table.ids, workers=3)
        for i in ds.table.ids:
            assert np.array_equal(a.get(i), b.get(i)), (spec.name, i)


def test_cache_is_keyed_by_dataset_and_transform(ds, tmp_path):
    dirs = {input_set_dir(ds, s, tmp_path) for s in ALL_SETS}
    dirs.add(input_set_dir(ds, InputSetSpec("LR&FS", "fixed", 4, (24, 33)), tmp_path))
    assert len(dirs) == 4
    same_name_other_size = input_set_dir(ds, InputSetSpec("LR&FS", "fixed", 4, (24, 33)), tmp_path)
    assert same_name_other_size != input_set_dir(ds, LR, tmp_path)
    # Batch size does not change the pixels, so it shares the cache.
    assert input_set_dir(ds, InputSetSpec("LR&FS", "fixed", 64, (24, 32)), tmp_path) == input_set_dir(ds, LR, tmp_path)
    d = input_set_dir(ds, LR, tmp_path)
    assert d.parent.name == ds.fingerprint and d.name.startswith("lr-fs-")


def test_damaged_cache_file_is_rebuilt(ds, tmp_path):
    ps = PreparedSet(ds, LR, tmp_path)
    i = ds.table.ids[0]
    good = ps.get(i).copy()
    cached = ps.dir / f"{i}.npy"
    cached.write_bytes(cached.read_bytes()[:100])
    assert np.array_equal(ps.get(i), good)
    assert np.array_equal(np.load(cached), good)


def test_unknown_id_and_corrupt_source(ds, tmp_path):
    ps = PreparedSet(ds, LR, tmp_path)
    with pytest.raises(DatasetError, match="not in the dataset"):
        ps.prepare(["nope.jpg"])
    i = ds.table.ids[1]
    jpeg = ds.image_path(i)
    saved = jpeg.read_bytes()
    try:
        jpeg.write_bytes(saved[: len(saved) // 3])
        with pytest.raises(DatasetError, match=i):
            ps.get(i)
    finally:
        jpeg.write_bytes(saved)
    assert not list(ps.dir.glob("*.tmp"))


def test_two_processes_prepare_the_same_cache_at_once(ds, tmp_path):
    script = textwrap.dedent(f"""
        from hrvs_ray.config import DatasetSpec, InputSetSpec
        from hrvs_ray.data.inputs import PreparedSet
        from hrvs_ray.data.mame import open_dataset
        ds = open_dataset(DatasetSpec(kind="mame", path={str(ds.root)!r}, subset="all"))
        ps = PreparedSet(ds, InputSetSpec("HR&VS", "none", 2), {str(tmp_path)!r})
        for _ in range(3):
            for i in ds.table.ids:
                (ps.dir / (i + ".npy")).unlink(missing_ok=True)
            ps.prepare(ds.table.ids)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    ps = PreparedSet(ds, HR, tmp_path)
    assert ps.prepare(ds.table.ids).decoded == 0
    for i in ds.table.ids:
        assert np.array_equal(ps.get(i), load_image(ds.image_path(i)))
    assert not list(ps.dir.glob("*.tmp"))
