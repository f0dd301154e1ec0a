"""Data-parallel scopes ``R*SCOPE`` on recorded machines and on this node: each rank gets what a
single-rank cell of its scope gets, ranks on one node never share a core, and a scope that a
node (or a set of nodes) cannot hold is unavailable with the reason."""
from __future__ import annotations

import json

import pytest

from hrvs_ray.cli import EXIT_OK, main
from hrvs_ray.node.placement import place_ranks, rank_placements, resolve_scope
from hrvs_ray.node.topology import read_topology
from hrvs_ray.node.topology_types import ScopeUnavailable
from tests.helpers import tiny_sweep_dict


def _cores(topo, cpus) -> set[tuple[int, ...]]:
    """The physical cores (each by its hardware threads: core ids repeat across dies) ``cpus`` touch."""
    return {c.cpus for c in topo.cores if set(c.cpus) & set(cpus)}


@pytest.mark.parametrize("name, scope, ranks", [
    ("32intel64-2p8co2t+8ve", "2*cores:1", 2), ("32intel64-2p8co2t+8ve", "4*cores:4", 4),
    ("64amd64-4s2n4ca2co", "4*cores:4", 4), ("64amd64-4s2n4ca2co", "8*cores:8", 8),
    ("48amd64-4pa2n6c-sparse", "4*cores:6", 4), ("16em64t-4s2c2t", "8*cores:1", 8),
])
def test_cores_ranks_are_disjoint_single_rank_placements(machine, name, scope, ranks):
    topo = read_topology(machine(name))
    got = rank_placements(topo, scope)
    one = scope.split("*")[1]
    assert len(got) == ranks and all(p.scope == one for p in got)
    assert got[0] == resolve_scope(topo, one)                      # rank 0 is the single-rank cell
    used: set[int] = set()
    for r, p in enumerate(got):
        k = int(one.split(":")[1])
        assert len(p.cpus) == p.threads == k and len(_cores(topo, p.cpus)) == k and p.socket is not None
        free = set(topo.online) - {x for c in topo.cores if set(c.cpus) & used for x in c.cpus}
        assert p == resolve_scope(topo, one, allowed=free), r       # the same rules, on what is left
        assert not _cores(topo, p.cpus) & _cores(topo, used)       # never a shared core (SMT siblings too)
        assert set(p.numa_nodes) == {topo.node_of(x) for x in p.cpus} - {None}
        used |= set(p.cpus)
    whole = resolve_scope(topo, scope)                            # the cell's CPUs on this node
    assert whole.scope == scope and whole.cpus == tuple(sorted(used)) and whole.threads == k * ranks


def test_numa_binding_per_rank_follows_the_single_rank_rules(machine):
    topo = read_topology(machine("64amd64-4s2n4ca2co"))          # 2 NUMA nodes per socket
    got = rank_placements(topo, "4*cores:4")
    assert [p.numa_nodes for p in got] == [(0,), (0,), (1,), (1,)]
    assert resolve_scope(topo, "4*cores:4").numa_nodes == (0, 1)


@pytest.mark.parametrize("name, scope, reason", [
    ("32intel64-2p8co2t+8ve", "3*cores:8", "3*cores:8 needs 3 disjoint sets of cores:8 on one node (ranks never "
                                           "share a core); this node holds 2 (CPUs 0-7, 8-15)"),
    ("32intel64-2p8co2t+8ve", "2*cores:9", "2*cores:9: no rank fits on this node (cores:9: cores:9 needs 9"),
    ("32intel64-2p8co2t+8ve", "2*node", "2*node needs 2 nodes, one whole node per rank; this node holds 1"),
    ("32intel64-2p8co2t+8ve", "4*socket", "4*socket needs 4 sockets, one per rank; this node holds 2"),
])
def test_a_node_that_cannot_hold_every_rank_says_why(machine, name, scope, reason):
    with pytest.raises(ScopeUnavailable) as e:
        resolve_scope(read_topology(machine(name)), scope)
    assert e.value.reason.startswith(reason)


def test_sockets_on_one_node_then_across_nodes(machine):
    two = read_topology(machine("32intel64-2p8co2t+8ve"))
    four = read_topology(machine("16em64t-4s2c2t"))
    got = rank_placements(two, "2*socket")
    assert [p.socket for p in got] == [0, 1] and got[0] == resolve_scope(two, "socket")
    assert [p.socket for p in rank_placements(two, "4*socket")] == [0, 1]   # what this node holds
    one_node = place_ranks({"a": two, "b": four}, "2*socket")
    assert [(r.rank, r.node, r.placement.socket) for r in one_node] == [(0, "a", 0), (1, "a", 1)]
    across = place_ranks({"a": two, "b": two}, "4*socket")
    assert [(r.rank, r.node, r.placement.socket) for r in across] == [(0, "a", 0), (1, "a", 1), (2, "b", 0),
                                                                      (3, "b", 1)]
    with pytest.raises(ScopeUnavailable, match=r"5\*socket needs 5 sockets; 2 nodes here \(a: holds 2; b: holds 2\)"):
        place_ranks({"a": two, "b": two}, "5*socket")


def test_node_ranks_need_distinct_nodes(machine):
    two = read_topology(machine("32intel64-2p8co2t+8ve"))
    four = read_topology(machine("16em64t-4s2c2t"))
    got = place_ranks({"a": two, "b": four}, "2*node")
    assert [(r.rank, r.node, r.placement) for r in got] == [(0, "a", resolve_scope(two, "node")),
                                                            (1, "b", resolve_scope(four, "node"))]
    with pytest.raises(ScopeUnavailable, match=r"2\*node needs 2 nodes, one whole node per rank; 1 node here"):
        place_ranks({"a": two}, "2*node")


def test_cores_ranks_stay_on_one_node(machine):
    small = read_topology(machine("16em64t-4s2c2t"))             # 4 sockets x 2 cores
    big = read_topology(machine("32intel64-2p8co2t+8ve"))
    got = place_ranks({"small": small, "big": big}, "2*cores:4")
    assert {r.node for r in got} == {"big"} and [r.rank for r in got] == [0, 1]
    with pytest.raises(ScopeUnavailable, match="small: 4\\*cores:2 needs 4 disjoint|holds"):
        place_ranks({"small": read_topology(machine("16em64t-4s2c2t")), "x": small}, "8*cores:2")


def test_this_node_two_cores_one_each():
    topo = read_topology("/")
    usable = [c for c in topo.cores if topo.allowed_cpus is None or set(c.cpus) & topo.allowed_cpus]
    if len(usable) < 2:
        pytest.skip("this node has fewer than 2 usable cores")
    got = rank_placements(topo, "2*cores:1")
    assert len(got) == 2 and got[0] == resolve_scope(topo, "cores:1")
    assert not _cores(topo, got[0].cpus) & _cores(topo, got[1].cpus)
    if len(topo.online) == 2:                                    # the 2-core CI VM: CPU 0 and CPU 1
        assert [p.cpus for p in got] == [(0,), (1,)]
    with pytest.raises(ScopeUnavailable, match="2\\*node needs 2 nodes"):
        resolve_scope(topo, "2*node")


def test_node_info_shows_each_rank(machine, capsys):
    root = machine("32intel64-2p8co2t+8ve")
    assert main(["node-info", "--sysroot", str(root), "--scopes", "cores:4,2*cores:4,2*node", "--format", "json"]) \
        == EXIT_OK
    doc = json.loads(capsys.readouterr().out)["scopes"]
    assert [r["cpus"] for r in doc["2*cores:4"]["ranks"]] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert doc["2*cores:4"]["cpus"] == list(range(8)) and "ranks" not in doc["cores:4"]
    assert doc["2*node"]["unavailable"].startswith("2*node needs 2 nodes")
    assert main(["node-info", "--sysroot", str(root), "--scopes", "2*cores:4"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "  rank 1 (cores:4)" in out and "CPUs 4-7" in out


def test_plan_maps_data_parallel_scopes_and_previews_the_splits(machine, tmp_path, capsys):
    sweep = tmp_path / "dp.yaml"
    sweep.write_text(json.dumps(tiny_sweep_dict(tmp_path, scopes=["cores:1", "2*cores:1", "2*node"],
                                                remedies={"split": ["shard", "balanced"]})))
    assert main(["plan", str(sweep), "--batches", "4", "--sysroot", str(machine("32intel64-2p8co2t+8ve"))]) == EXIT_OK
    out = capsys.readouterr().out
    assert "    rank 0 (cores:1): CPUs 0 (1 uniform), memory nodes 0" in out
    assert "    rank 1 (cores:1): CPUs 1 (1 uniform), memory nodes 0" in out
    assert "  2*node: unavailable here: 2*node needs 2 nodes, one whole node per rank" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  HR&VS      pad")]
    assert [r[3] for r in rows] == ["shard", "balanced", "uniform"] and rows[0][-1] == "1.00x"
    assert float(rows[1][-1].rstrip("x")) >= 1.0 >= float(rows[2][-1].rstrip("x"))
