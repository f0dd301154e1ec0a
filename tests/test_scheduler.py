from __future__ import annotations

from hrvs_ray.cluster.nodes import NodeView, assign_clusters, name_nodes
from hrvs_ray.cluster.scheduler import Pending, Scheduler
from hrvs_ray.config import parse_sweep
from hrvs_ray.plan import plan_cells
from conftest import tiny_sweep_dict


def _cells(tmp_path, n_clusters=("a",)):
    return plan_cells(parse_sweep(tiny_sweep_dict(tmp_path)), list(n_clusters))


def test_cells_spread_over_idle_nodes_one_at_a_time(tmp_path):
    cells = _cells(tmp_path)
    s = Scheduler([Pending(c, {"n1", "n2"}) for c in cells], retries=1)
    p1, p2 = s.next_for("n1"), s.next_for("n2")
    assert p1.cell != p2.cell and len(s) == len(cells) - 2


def test_crash_is_retried_once_on_another_node(tmp_path):
    c = _cells(tmp_path)[0]
    s = Scheduler([Pending(c, {"n1", "n2"})], retries=1)
    p = s.next_for("n1")
    assert s.after_crash(p)                   # requeued for n2
    assert s.next_for("n1") is None           # not back on the node that crashed
    p = s.next_for("n2")
    assert not s.after_crash(p)               # second crash: final


def test_single_node_cluster_does_not_retry_and_lost_node_strands(tmp_path):
    cells = _cells(tmp_path)
    s = Scheduler([Pending(c, {"n1"}) for c in cells], retries=1)
    assert not s.after_crash(s.next_for("n1"))
    stranded = s.node_lost("n1")
    assert len(stranded) == len(cells) - 1 and len(s) == 0


def test_cluster_assignment_by_label_then_cpu_model(tmp_path):
    nodes = [NodeView("id1", "h", {"cluster": "mn4"}, 2, 1, {"cpu_model": "Xeon 8160"}),
             NodeView("id2", "h", {}, 2, 1, {"cpu_model": "AMD EPYC 7742 64-Core"}),
             NodeView("id3", "g", {}, 2, 1, {"cpu_model": "ARM thing"})]
    name_nodes(nodes)
    assert [n.name for n in nodes] == ["h-id1", "h-id2", "g"]
    assert assign_clusters(nodes, parse_sweep(tiny_sweep_dict(tmp_path))) == []
    assert [n.cluster for n in nodes] == ["mn4", "AMD-EPYC-7742-64-Core", "ARM-thing"]
    sweep = parse_sweep(tiny_sweep_dict(tmp_path, clusters=[{"name": "mn4"}, {"name": "amd", "cpu_model": "EPYC"}]))
    for n in nodes:
        n.cluster = None
    notes = assign_clusters(nodes, sweep)
    assert [n.cluster for n in nodes] == ["mn4", "amd", None]
    assert "matches no cluster" in notes[0]


def test_cell_too_big_for_node_memory_is_skipped_with_estimate(tmp_path):
    from hrvs_ray.cluster.driver import feasibility
    from hrvs_ray.probes.topology import ScopePlacement

    sweep = parse_sweep(tiny_sweep_dict(tmp_path))
    cell = plan_cells(sweep, ["a"])[0]
    place = ScopePlacement("node", (0, 1), 2, (0,), 0)
    small = NodeView("id1", "h", {}, 2, 4_000_000_000, {}, {"node": place}, name="small", cluster="a")
    big = NodeView("id2", "g", {}, 2, 64_000_000_000, {}, {"node": place}, name="big", cluster="a")
    ok, why = feasibility(sweep, cell, [small, big], peak=10_000_000_000)
    assert ok == {"id2"}
    ok, why = feasibility(sweep, cell, [small], peak=10_000_000_000)
    assert not ok and "estimated peak memory 10.0 GB exceeds 90% of the node's 4.0 GB" in why


def test_failure_causes_are_classified_from_rays_exceptions():
    import ray.exceptions as rex

    from hrvs_ray.cluster.driver import classify

    assert classify(rex.OutOfMemoryError("Task was killed due to the node running low on memory")) \
        .startswith("out of memory")
    assert classify(rex.NodeDiedError("node x died")).startswith("node lost")
    assert classify(rex.ActorDiedError()).startswith("process died")
    assert classify(ValueError("bad")) == "ValueError: bad"
