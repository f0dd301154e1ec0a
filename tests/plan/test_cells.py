"""Planned cells: the cartesian product with stable ids, per-cluster settings, shared images."""
from __future__ import annotations

import pytest

from hrvs_ray.config import load_sweep, parse_sweep
from hrvs_ray.plan.cells import CellSpec, plan_cells
from tests.helpers import REPO, tiny_sweep_dict


def test_cells_are_the_cartesian_product_with_stable_ids(tmp_path):
    d = tiny_sweep_dict(tmp_path, scopes=["cores:2", "node"], training={"runs": 2, "steps": 1})
    s = parse_sweep(d)
    cells = plan_cells(s, ["alpha", "beta"])
    assert len(cells) == 2 * 2 * 2 * 3
    assert len({c.cell_id for c in cells}) == len(cells)
    assert [c.cell_id for c in cells] == [c.cell_id for c in plan_cells(parse_sweep(d), ["alpha", "beta"])]
    c = cells[0]
    assert c.cell_id.startswith("alpha.cores-2.lr-fs.r0.")
    assert CellSpec.from_json(c.to_json()) == c


def test_llc_event_and_scopes_can_differ_per_cluster(tmp_path):
    d = tiny_sweep_dict(tmp_path, scopes=["node"], counters={"llc": "generic"},
                        clusters=[{"name": "mn4", "scopes": ["cores:4", "node"], "counters": {"llc": "raw:0x20d1"}},
                                  {"name": "amd", "cpu_model": "EPYC"}])
    cells = plan_cells(parse_sweep(d), ["mn4", "amd"])
    mn4 = [c for c in cells if c.cluster == "mn4"]
    amd = [c for c in cells if c.cluster == "amd"]
    assert {c.counters.llc for c in mn4} == {"raw:0x20d1"} and {c.scope for c in mn4} == {"cores:4", "node"}
    assert {c.counters.llc for c in amd} == {"generic"} and {c.scope for c in amd} == {"node"}


@pytest.mark.parametrize("name", ["quick-remedies", "remedies"])
@pytest.mark.slow
def test_cells_that_differ_only_in_remedy_train_on_the_same_images(name):
    from collections import Counter

    from hrvs_ray.plan.cells import step_plan
    from hrvs_ray.plan.table import planning_shapes
    sweep = load_sweep(REPO / "sweeps" / f"{name}.yaml")
    shapes, _ = planning_shapes(sweep)
    groups: dict[tuple, dict[str, tuple]] = {}
    cells = [c for c in plan_cells(sweep, ["x"]) if c.scope == sweep.scopes[-1]]   # scopes share seeds
    for cell in cells:
        idx = step_plan(cell, shapes.heights, shapes.widths)
        ids = [[shapes.ids[i] for i in row] for row in idx.tolist()]
        w = cell.warmup_steps
        key = (cell.cluster, cell.scope, cell.input_set.name, cell.run)
        groups.setdefault(key, {})[cell.remedy.label] = (
            Counter(i for r in ids[:w] for i in r), Counter(i for r in ids[w:] for i in r), ids)
    assert len(groups) == len(sweep.input_sets) * sweep.training.runs
    for key, by_remedy in groups.items():
        pad = by_remedy["pad+fp32+nchw"]
        for label, (warm, timed, _ids) in by_remedy.items():
            assert warm == pad[0] and timed == pad[1], (key, label)   # same multiset, warm-up and timed
        buckets = [v[2] for k, v in by_remedy.items() if k.startswith("bucket")]
        if key[2] != "LR&FS":              # fixed-size sets: every order has no padding to cut
            assert buckets and all(b != pad[2] for b in buckets), key   # regrouped, not pad's batches


def test_split_runs_on_data_parallel_scopes_only_and_every_split_trains_the_same_images(tmp_path):
    from hrvs_ray.data.shapes import shipped_shape_table
    from hrvs_ray.plan.cells import step_plan
    from hrvs_ray.scopes import ranks_of
    d = tiny_sweep_dict(tmp_path, scopes=["cores:1", "2*cores:1"], remedies={"split": ["balanced", "shard", "uniform"]})
    cells = plan_cells(parse_sweep(d), ["x"])
    sets = ("LR&FS", "MR&VS", "HR&VS")
    per_scope = {s: [(c.input_set.name, c.remedy.split) for c in cells if c.scope == s]
                 for s in ("cores:1", "2*cores:1")}
    assert per_scope["cores:1"] == [(i, "shard") for i in sets]
    assert per_scope["2*cores:1"] == [(i, s) for i in sets for s in ("balanced", "shard", "uniform")]
    assert all(ranks_of(c.scope) == 2 for c in cells if c.remedy.split != "shard")
    assert len({c.cell_id for c in cells}) == len(cells)
    dp = next(c for c in cells if c.remedy.split == "balanced")
    assert ".2-cores-1." in dp.cell_id and "split-balanced" in dp.cell_id
    t = shipped_shape_table().select("train").sorted()
    h, w = t.heights[:200], t.widths[:200]
    for name in ("MR&VS", "HR&VS"):       # the global batch is the 1-rank cell's step, whatever the split
        plans = {(c.scope, c.remedy.split): step_plan(c, h, w).tolist() for c in cells if c.input_set.name == name}
        assert len({str(p) for p in plans.values()}) == 1, name


def test_a_sweep_without_split_keeps_its_cells(tmp_path):
    d = tiny_sweep_dict(tmp_path, scopes=["cores:2", "node"])
    before = [(c.cell_id, c.remedy.label) for c in plan_cells(parse_sweep(d), ["x"])]
    d["remedies"] = {"split": "shard"}
    assert [(c.cell_id, c.remedy.label) for c in plan_cells(parse_sweep(d), ["x"])] == before
