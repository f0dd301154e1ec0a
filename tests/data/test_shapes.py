"""One resize arithmetic: the planner's, checked against exact rationals over the whole
shipped MAMe shape table and against the arrays the preparation really produces."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from hrvs_ray.config import DatasetSpec, InputSetSpec, SyntheticSpec
from hrvs_ray.data.inputs import PreparedSet
from hrvs_ray.data.mame import open_dataset
from hrvs_ray.data.shapes import shipped_shape_table, transformed_arrays, transformed_shape
from hrvs_ray.data.synthetic import generate
from hrvs_ray.plan.padding import pixel_stats
from hrvs_ray.plan.seeded_order import batch_indices

SETS = [InputSetSpec("LR&FS", "fixed", 8, (256, 256)), InputSetSpec("MR&VS", "shorter_side", 8, (500,)),
        InputSetSpec("small", "shorter_side", 8, (37,)), InputSetSpec("HR&VS", "none", 8)]


def _exact(spec: InputSetSpec, h: int, w: int) -> tuple[int, int]:
    """The README's rule in rationals: shorter side N, longer round-half-up(longer * N / shorter)."""
    if spec.resize == "fixed":
        return spec.size
    if spec.resize == "none":
        return h, w
    n = spec.size[0]
    longer = math.floor(Fraction(max(h, w) * n, min(h, w)) + Fraction(1, 2))
    return (n, longer) if h <= w else (longer, n)


@pytest.fixture(scope="module")
def table():
    return shipped_shape_table()


@pytest.mark.parametrize("spec", SETS, ids=lambda s: s.name)
def test_vectorised_arithmetic_is_exact_over_the_whole_shipped_table(table, spec):
    h, w = transformed_arrays(spec, table.heights, table.widths)
    want = [_exact(spec, a, b) for a, b in zip(table.heights.tolist(), table.widths.tolist(), strict=False)]
    assert list(zip(h.tolist(), w.tolist(), strict=False)) == want


@pytest.mark.parametrize("spec", SETS[1:3], ids=lambda s: s.name)
@pytest.mark.slow
def test_scalar_wrapper_agrees_over_the_whole_shipped_table(table, spec):
    h, w = transformed_arrays(spec, table.heights, table.widths)
    assert [transformed_shape(spec, a, b)
            for a, b in zip(table.heights.tolist(), table.widths.tolist(), strict=False)] == \
        list(zip(h.tolist(), w.tolist(), strict=False))


def test_readme_examples():
    mr = SETS[1]
    assert transformed_shape(mr, 1000, 2000) == (500, 1000) and transformed_shape(mr, 999, 1000) == (500, 501)
    assert transformed_shape(mr, 1000, 2001) == (500, 1001) and transformed_shape(mr, 700, 700) == (500, 500)


@pytest.mark.parametrize("spec", [InputSetSpec("LR&FS", "fixed", 4, (24, 20)),
                                  InputSetSpec("MR&VS", "shorter_side", 4, (21,)),
                                  InputSetSpec("HR&VS", "none", 4)], ids=lambda s: s.name)
def test_prepared_arrays_have_the_planned_pixels(tmp_path_factory, spec):
    root = tmp_path_factory.mktemp("ds")
    generate(root, SyntheticSpec(count=16, scale=0.04, seed=4))
    ds = open_dataset(DatasetSpec(kind="mame", path=str(root), subset="all"))
    ps = PreparedSet(ds, spec, tmp_path_factory.mktemp("cache"))
    idx = batch_indices(len(ds), 3, 0, spec.batch_size, 4)
    plan = pixel_stats(*transformed_arrays(spec, ds.table.heights, ds.table.widths), idx)
    got = np.array([sum(ps.get(ds.table.ids[i]).shape[0] * ps.get(ds.table.ids[i]).shape[1] for i in row)
                    for row in idx])
    assert got.tolist() == plan["informative"].tolist()
    for i in ds.table.ids:     # and from the cache, read back as prepared
        h, w = ds.shapes[i]
        assert ps.get(i).shape == (*_exact(spec, h, w), 3)
