"""The plan once (issue 24): each cell's step plan is computed once per sweep and shared by
the pre-flights, the node (CellSpec.batches) and the report (plan.json)."""
from __future__ import annotations

import json

import pytest

from hrvs_ray.config import load_sweep
from hrvs_ray.plan.cells import plan_cells, step_plan
from hrvs_ray.plan.epoch import plan_record, policy_views, views_from_record
from hrvs_ray.plan.preflight import needed_image_ids
from hrvs_ray.plan.step_plans import StepPlans
from hrvs_ray.plan.table import planning_shapes
from tests.helpers import REPO


@pytest.fixture(scope="module")
def quick():
    sweep = load_sweep(REPO / "sweeps" / "quick-remedies.yaml")
    table, _ = planning_shapes(sweep, read_disk=False)
    return sweep, table


def _distinct(cells) -> int:
    return len({(c.input_set, c.remedy.batching, c.remedy.window if c.remedy.batching == "bucket" else None,
                 c.run) for c in cells})


def test_every_consumer_of_a_sweep_shares_one_computation_per_plan(quick):
    sweep, table = quick
    plans = StepPlans(table)
    cells = plan_cells(sweep, ["a", "b"])
    needed_image_ids(sweep, table, plans=plans)            # the data pre-flight
    after_preflight = plans.computed
    for c in cells:                                        # the memory pre-flight, the cells' specs
        plans.largest_pass(c)
        c.planned(plans.batches(c))
    plan_record(sweep, plans)                              # what the report reads
    assert after_preflight == plans.computed == _distinct(cells) < len(cells)


def test_a_shared_plan_is_the_cells_own_plan(quick):
    sweep, table = quick
    plans = StepPlans(table)
    for c in plan_cells(sweep, ["a"])[:12]:
        assert (plans.indices(c) == step_plan(c, table.heights, table.widths)).all()
        assert plans.batches(c) == tuple(tuple(table.ids[i] for i in row)
                                         for row in step_plan(c, table.heights, table.widths))


def test_a_planned_spec_carries_its_batches_and_keeps_them_out_of_the_record(quick):
    sweep, table = quick
    c = plan_cells(sweep, ["a"])[0]
    p = c.planned(StepPlans(table).batches(c))
    assert len(p.batches) == c.n_batches and p.cell_id == c.cell_id
    assert type(p).from_json(p.to_json()) == p                 # travels whole
    assert "batches" not in json.loads(p.to_json(batches=False))  # the cells table's spec_json
    with pytest.raises(ValueError, match="a plan of 1 steps"):
        c.planned(p.batches[:1])


def test_the_recorded_plan_is_the_plan(quick):
    sweep, table = quick
    plans = StepPlans(table)
    record = json.loads(json.dumps(plan_record(sweep, plans)))  # as plan.json stores it
    again = policy_views(sweep, table)
    got = views_from_record(record)
    assert set(got) == set(again)
    for key, v in again.items():
        assert got[key]["sampled"] == v["sampled"] and got[key]["epoch"] == v["epoch"]
        assert got[key]["batch_size"] == sweep.input_set(key[0]).batch_size


def test_the_node_trains_the_plan_it_was_sent(quick):
    """train.cell.cell_batches (what run_cell trains) takes the driver's plan as sent; only a
    cell run outside a sweep plans for itself, with the same plan."""
    pytest.importorskip("torch")
    from types import SimpleNamespace

    from hrvs_ray.train.cell import cell_batches

    sweep, table = quick
    c = plan_cells(sweep, ["a"])[0]
    own = StepPlans(table).batches(c)
    sent = tuple(reversed(own))                         # any plan: the node must not re-plan it
    data = SimpleNamespace(table=table)
    assert cell_batches(c.planned(sent), data) == list(sent)
    assert cell_batches(c, data) == list(own)
