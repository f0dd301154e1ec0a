from __future__ import annotations

from hrvs_ray.cluster.nodes import NodeView, assign_clusters, name_nodes
from hrvs_ray.cluster.scheduler import Pending, Scheduler
from hrvs_ray.config import parse_sweep
from hrvs_ray.plan.cells import plan_cells
from tests.helpers import tiny_sweep_dict


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


def test_single_node_cluster_retries_on_its_one_node_and_lost_node_strands(tmp_path):
    """next_for's promise: a cell goes back to a node it crashed on when it is the only option."""
    cells = _cells(tmp_path)
    s = Scheduler([Pending(c, {"n1"}) for c in cells], retries=1)
    p = s.next_for("n1")
    assert s.after_crash(p)                       # requeued: n1 is its only node
    assert s.next_for("n1") is p and p.tried == ["n1", "n1"]
    assert not s.after_crash(p)                   # its one retry is spent
    stranded = s.node_lost("n1")
    assert len(stranded) == len(cells) - 1 and len(s) == 0


def test_a_node_prefers_cells_its_current_host_can_run(tmp_path):
    cells = _cells(tmp_path)
    s = Scheduler([Pending(c, {"n1"}) for c in cells], retries=1)
    last = cells[-1]
    assert s.next_for("n1", prefer=lambda c: c == last).cell == last
    assert s.next_for("n1", prefer=lambda c: False).cell == cells[0]     # none preferred: queue order


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
    from hrvs_ray.cluster.scheduler import feasibility
    from hrvs_ray.node.topology import ScopePlacement

    sweep = parse_sweep(tiny_sweep_dict(tmp_path))
    cell = plan_cells(sweep, ["a"])[0]
    place = ScopePlacement("node", (0, 1), 2, (0,), 0)
    small = NodeView("id1", "h", {}, 2, 4_000_000_000, {}, {"node": place}, name="small", cluster="a")
    big = NodeView("id2", "g", {}, 2, 64_000_000_000, {}, {"node": place}, name="big", cluster="a")
    ok, why = feasibility(cell, [small, big], 10_000_000_000, sweep.execution.memory_headroom)
    assert ok == {"id2"}
    ok, why = feasibility(cell, [small], 10_000_000_000, sweep.execution.memory_headroom)
    assert not ok and "estimated peak memory 10.0 GB exceeds 90% of the node's 4.0 GB" in why
    # the cell's zygote stays resident beside it: 3.0 GB fits 90 % of 4 GB alone, not with 0.8 GB more
    assert feasibility(cell, [small], 3_000_000_000, 0.9)[0] == {"id1"}
    ok, why = feasibility(cell, [small], 3_000_000_000, 0.9, resident=800_000_000)
    assert not ok and "3.0 GB plus 0.8 GB for its zygote exceeds 90% of the node's 4.0 GB" in why


def test_failure_causes_are_classified_from_rays_exceptions():
    import ray.exceptions as rex

    from hrvs_ray.cluster.failures import FailureKind
    from hrvs_ray.cluster.ray_io import classify

    oom = classify(rex.OutOfMemoryError("Task was killed due to the node running low on memory"))
    assert oom.kind is FailureKind.OUT_OF_MEMORY and str(oom).startswith("out of memory: ")
    assert classify(rex.NodeDiedError("node x died")).kind is FailureKind.NODE_LOST
    assert classify(rex.ActorDiedError()).kind is FailureKind.PROCESS_DIED
    other = classify(ValueError("bad"))
    assert other.kind is FailureKind.DRIVER_ERROR and str(other) == "driver error: ValueError: bad"


def test_a_cell_hosts_own_exception_and_its_cells_death_keep_their_words():
    """Ray's header line ("ray::CellHost.run() (pid=…)") says nothing: the cause does."""
    import ray.exceptions as rex

    from hrvs_ray.cluster.failures import FailureKind
    from hrvs_ray.cluster.ray_io import classify
    from hrvs_ray.cluster.zygote_client import CellProcessDied

    def raised(cause: Exception) -> Exception:
        return rex.RayTaskError("CellHost.run", "Traceback ...", cause).as_instanceof_cause()

    own = classify(raised(ValueError("invalid literal for int()")))
    assert own.kind is FailureKind.DRIVER_ERROR
    assert str(own) == "driver error: ValueError in the cell's host: invalid literal for int()"
    died = classify(raised(CellProcessDied("the cell's process (pid 7) was killed by SIGKILL")))
    assert died.kind is FailureKind.PROCESS_DIED and "killed by SIGKILL" in str(died)


def test_triage_leaves_finished_cells_and_skips_what_no_node_can_run(tmp_path):
    from hrvs_ray.cluster.scheduler import triage
    from hrvs_ray.node.topology import ScopePlacement

    sweep = parse_sweep(tiny_sweep_dict(tmp_path))
    cells = plan_cells(sweep, ["a"])
    place = ScopePlacement("node", (0, 1), 2, (0,), 0)
    node = NodeView("id1", "h", {}, 2, 8_000_000_000, {}, {"node": place}, name="n1", cluster="a")
    big = {cells[2].cell_id}
    t = triage(cells, {cells[0].cell_id: "ok", cells[1].cell_id: "failed"}, [node],
               lambda c: 20_000_000_000 if c.cell_id in big else 1, 0.9)
    assert t.already_done == 1                                     # ok cells are never rerun
    assert [p.cell.cell_id for p in t.pending] == [cells[1].cell_id]   # a failed cell runs again
    assert [(c.cell_id, "estimated peak memory 20.0 GB" in why) for c, why in t.skipped] == [(cells[2].cell_id, True)]


def test_only_failures_of_the_process_or_node_are_retried():
    from hrvs_ray.cluster.failures import FailureKind

    assert not FailureKind.CELL_ERROR.retryable   # a corrupt image fails the same way everywhere
    assert all(k.retryable for k in (FailureKind.PROCESS_DIED, FailureKind.OUT_OF_MEMORY,
                                     FailureKind.NODE_LOST, FailureKind.TIMEOUT))


def test_cuda_cells_go_only_to_nodes_with_a_gpu(tmp_path):
    from hrvs_ray.cluster.scheduler import feasibility
    from hrvs_ray.node.topology import ScopePlacement

    sweep = parse_sweep(tiny_sweep_dict(tmp_path, model={"device": "cuda"}))
    cell = plan_cells(sweep, ["a"])[0]
    place = ScopePlacement("node", (0, 1), 2, (0,), 0)
    cpu = NodeView("id1", "h", {}, 2, 4_000_000_000, {}, {"node": place}, name="cpu", cluster="a")
    gpu = NodeView("id2", "g", {}, 2, 4_000_000_000, {}, {"node": place}, name="gpu", cluster="a", gpus=1)
    ok, _ = feasibility(cell, [cpu, gpu], 10**12, 0.9)      # device memory is not host memory
    assert ok == {"id2"}
    ok, why = feasibility(cell, [cpu], 1, 0.9)
    assert not ok and "no GPU" in why


def test_each_node_is_judged_by_its_own_planned_peak(tmp_path):
    from hrvs_ray.cluster.scheduler import triage
    from hrvs_ray.node.topology import ScopePlacement

    sweep = parse_sweep(tiny_sweep_dict(tmp_path))
    cells = plan_cells(sweep, ["a"])[:1]
    place = ScopePlacement("node", (0, 1), 2, (0,), 0)
    lean = NodeView("id1", "h", {}, 2, 8_000_000_000, {}, {"node": place}, name="lean", cluster="a")
    fat = NodeView("id2", "g", {}, 2, 8_000_000_000, {}, {"node": place}, name="fat", cluster="a")
    # a calibrated model may say the same cell needs 2 GB on one node and 9 GB on another
    t = triage(cells, {}, [lean, fat], lambda c: (lambda n: 2_000_000_000 if n.name == "lean" else 9_000_000_000), 0.9)
    assert t.pending[0].feasible == {"id1"} and t.pending[0].peak_bytes == 2_000_000_000


def test_a_dead_node_is_never_handed_a_cell(tmp_path):
    sweep = parse_sweep(tiny_sweep_dict(tmp_path))
    cells = plan_cells(sweep, ["a"])
    s = Scheduler([Pending(c, {"n1", "n2"}) for c in cells], retries=1)
    s.node_lost("n1")
    assert s.next_for("n1") is None and s.next_for("n2") is not None


def _dp_cells(tmp_path, scope: str):
    d = tiny_sweep_dict(tmp_path)
    d["scopes"] = ["cores:1", scope]
    cells = plan_cells(parse_sweep(d), ["a"])
    return [c for c in cells if c.scope == "cores:1"], [c for c in cells if c.scope == scope]


def test_a_data_parallel_cell_waits_for_all_its_nodes_and_never_goes_to_one(tmp_path):
    single, dp = _dp_cells(tmp_path, "2*node")
    s = Scheduler([Pending(c, {"n1", "n2", "n3"}) for c in [*single[:1], *dp[:1], *single[1:]]], retries=1)
    assert s.next_group({"n1", "n2", "n3"}) is None           # queue order: the 1-rank cell is first...
    s.queue.rotate(-1)                                        # (put the 2-rank cell first again)
    assert s.next_for("n1").cell.scope == "cores:1"          # ...and next_for skips the 2-rank cell
    assert s.next_group({"n2"}) is None                       # one idle node is not enough
    p, nodes = s.next_group({"n2", "n3"})
    assert p.cell == dp[0] and nodes == ["n2", "n3"] and p.tried == ["n2"]   # one attempt
    # a rank's node left: retried on the nodes it has not tried first
    s.node_lost("n3")
    assert s.after_crash(p)
    p2, nodes2 = s.next_group({"n1", "n2"})
    assert p2 is p and nodes2 == ["n1", "n2"] and len(p.tried) == 2
    assert not s.after_crash(p)                                # its retry is spent
    s.queue.append(p)
    assert p not in s.node_lost("n4")                          # n1, n2 live: it can still run
    assert p in s.node_lost("n1")                              # one live node left: stranded


def test_feasibility_counts_the_ranks_a_node_holds_and_the_nodes_a_scope_needs(tmp_path):
    from hrvs_ray.cluster.scheduler import feasibility
    from hrvs_ray.node.topology_types import ScopePlacement

    def node(name, ranks):
        one = ScopePlacement("cores:1", (0,), 1, (), 0)
        return NodeView(name, name, {}, 2, 0, placements={"2*cores:1": [one] * ranks, "2*node": [one]},
                        name=name, cluster="a")

    _, (cell, *_) = _dp_cells(tmp_path, "2*cores:1")
    ok, why = feasibility(cell, [node("n1", 1), node("n2", 2)], 0, 0.9)
    assert ok == {"n2"} and "holds 1" in why
    _, (cell, *_) = _dp_cells(tmp_path, "2*node")
    assert feasibility(cell, [node("n1", 1), node("n2", 1)], 0, 0.9)[0] == {"n1", "n2"}
    ok, why = feasibility(cell, [node("n1", 1)], 0, 0.9)
    assert ok == set() and "needs 2 nodes" in why
