"""The compile axis (issue 27) without compiling anything: the sweep file's keys, ids and
labels, the replay flag the plan sets, and older folders read as eager."""
from __future__ import annotations

import pyarrow as pa
import pytest

from hrvs_ray.config import SweepError, parse_sweep
from hrvs_ray.plan.cells import plan_cells
from hrvs_ray.remedy_axes import PAPER, RemediesSpec, Remedy
from hrvs_ray.store import CELLS_SCHEMA, STEPS_SCHEMA, conform
from hrvs_ray.store.migrate import fill_defaults
from tests.helpers import tiny_sweep_dict


def _sweep(tmp_path, remedies=None, **over):
    d = tiny_sweep_dict(tmp_path, **over)
    if remedies is not None:
        d["remedies"] = remedies
    return parse_sweep(d, "x.yaml")


def test_compile_values_parameters_and_their_product(tmp_path):
    r = _sweep(tmp_path, {"compile": ["eager", "static", "dynamic"], "compile_cache": "warm",
                          "recompile_limit": 3}).remedies
    assert r.compile == ("eager", "static", "dynamic") and (r.compile_cache, r.recompile_limit) == ("warm", 3)
    combos = r.combinations()
    assert [c.compile for c in combos] == ["eager", "static", "dynamic"]
    # eager carries the parameters' defaults: they mean nothing to it, so its row says null
    assert combos[0].to_row()["compile_cache"] is None and combos[0].to_row()["recompile_limit"] is None
    row = combos[1].to_row()
    assert (row["compile"], row["compile_cache"], row["recompile_limit"]) == ("static", "warm", 3)
    assert combos[1].label == "pad+fp32+nchw+compile-static(warm)(lim3)"


@pytest.mark.parametrize("remedies, key, words", [
    ({"compile_cache": "warm"}, "remedies.compile_cache", "only used with a compiled setting"),
    ({"compile": "eager", "recompile_limit": 4}, "remedies.recompile_limit", "only used with a compiled setting"),
    ({"compile": "max-autotune"}, "remedies.compile", "must be one of eager, static, auto, dynamic"),
    ({"compile": "static", "compile_cache": "hot"}, "remedies.compile_cache", "must be one of cold, warm"),
    ({"compile": "static", "recompile_limit": 0}, "remedies.recompile_limit", "must be >= 1"),
])
def test_bad_compile_keys_are_refused_naming_the_key(tmp_path, remedies, key, words):
    with pytest.raises(SweepError) as e:
        _sweep(tmp_path, remedies)
    assert e.value.key == key and words in e.value.problem


def test_cuda_uses_the_same_axis(tmp_path):
    r = _sweep(tmp_path, {"compile": ["eager", "dynamic"]}, model={"device": "cuda"}).remedies
    assert r.compile == ("eager", "dynamic")


def test_eager_keeps_the_papers_ids_and_labels_and_only_a_compiling_sweep_replays(tmp_path):
    plain = plan_cells(_sweep(tmp_path), ["local"])
    with_eager = plan_cells(_sweep(tmp_path, {"compile": "eager"}), ["local"])
    assert [c.cell_id for c in plain] == [c.cell_id for c in with_eager]
    assert not any(c.replay for c in plain) and Remedy(compile="eager") == PAPER
    cells = plan_cells(_sweep(tmp_path, {"compile": ["eager", "static"]}), ["local"])
    assert all(c.replay for c in cells)
    eager = [c for c in cells if c.remedy.compile == "eager"]
    static = [c for c in cells if c.remedy.compile == "static"]
    assert len(eager) == len(static) == 3 and all("compile-static" in c.cell_id for c in static)
    # the eager cells of a compiling sweep are the paper's setup and keep its ids
    assert [c.cell_id for c in eager] != [] and all(c.remedy.is_paper for c in eager)


def test_a_row_names_its_compile_setting_and_reads_back():
    r = Remedy(compile="auto", recompile_limit=2)
    assert Remedy.from_row(r.to_row()) == r
    assert Remedy.from_row(PAPER.to_row()) == PAPER


def test_older_folders_read_as_eager_without_replay():
    steps = conform(pa.table({"sweep": ["s"], "cell_id": ["a"], "step": pa.array([0], pa.int32()),
                              "total_px": pa.array([10], pa.int64())}), STEPS_SCHEMA)
    t = fill_defaults(steps)
    assert t.column("compile").to_pylist() == ["eager"] and t.column("replay").to_pylist() == [False]
    assert t.column("compiles").to_pylist() == [None]   # not recorded then: unknown, not 0
    cells = fill_defaults(conform(pa.table({"sweep": ["s"], "cell_id": ["a"]}), CELLS_SCHEMA))
    assert cells.column("compile").to_pylist() == ["eager"]


def test_the_default_spec_is_not_compiling():
    assert not RemediesSpec().replays and RemediesSpec(compile=("eager", "auto")).replays
