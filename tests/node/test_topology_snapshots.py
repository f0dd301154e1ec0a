"""Every recorded machine against hwloc's independent reading of it (``.console`` / ``.xml``).

Counts (packages, physical cores, CPUs, NUMA nodes, core kinds) must equal hwloc's, within
the CPUs and memory nodes the snapshot's cgroup allows; every scope must map to the CPUs the
scope rules give on hwloc's tree (see fixtures/hwloc_oracle.py), and its memory nodes to the
NUMA nodes hwloc places those CPUs in. Breaking the core rule (Bulldozer), die / L3 grouping,
kind detection, cgroup cpusets or NUMA parsing changes one of these answers.
"""
from __future__ import annotations

import pytest

from hrvs_ray.node.topology import ScopeUnavailable, read_topology, resolve_scope, restrict
from tests.fixtures.hwloc_oracle import expected_scope, node_files, read_hwloc
from tests.helpers import SHARED, snapshots, unpack

ALL = snapshots(SHARED)
# The largest recorded machines (thousands of /sys files, a few seconds each to unpack on
# this project's disks) are out of the fast lane (README); the small ones stay in it, and CI
# runs them all.
NAMES = [pytest.param(name, marks=pytest.mark.slow) if archive.stat().st_size > 12_000 else name
         for name, archive, _ in ALL]
SCOPES = ("cores:1", "cores:2", "cores:4", "cores:8", "socket", "node")


def test_every_shared_snapshot_is_covered_with_an_answer():
    shared = [a for _, a, _ in ALL if SHARED in a.parents]
    if not shared:
        pytest.skip(f"shared topologies not present under {SHARED / 'data'}")
    assert len(shared) >= 12, [a.name for a in shared]
    assert all(answer is not None for _, _, answer in ALL), [n for n, _, a in ALL if a is None]


@pytest.fixture(scope="module")
def hwloc_machine(tmp_path_factory):
    """hwloc_machine(name) -> (root, our topology, hwloc's reading), once per module."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            _, archive, answer = next(s for s in ALL if s[0] == name)
            root = unpack(archive, tmp_path_factory.mktemp("snap"))
            cache[name] = (root, read_topology(root), read_hwloc(answer))
        return cache[name]
    return get


def _usable(topo):
    return restrict(topo, topo.allowed_cpus) if topo.allowed_cpus is not None else topo


@pytest.mark.parametrize("name", NAMES)
def test_counts_match_hwloc(hwloc_machine, name):
    root, topo, hw = hwloc_machine(name)
    view = _usable(topo)
    assert (len(view.sockets), len(view.cores)) == (len(hw.packages), len(hw.cores))
    assert set(view.online) == hw.pus
    assert sorted(len(c.cpus) for c in view.cores) == sorted(len(c.pus) for c in hw.cores)
    ours = [n for n in topo.numa if topo.allowed_mems is None or n in topo.allowed_mems]
    if topo.numa_problem:
        # hwloc had to repair the same data (it merges nodes listing identical CPUs)
        assert len(hw.numa_nodes) < len(node_files(root))
    else:
        assert ours == hw.numa_nodes


@pytest.mark.parametrize("name", NAMES)
def test_core_kinds_match_hwloc(hwloc_machine, name):
    _, topo, hw = hwloc_machine(name)
    online = set(_usable(topo).online)
    if hw.kinds:
        assert [set(k.cpus) & online for k in topo.kinds] == [set(k) & online for k in hw.kinds]
        assert [k.name for k in topo.kinds][0] == "performance"
    else:
        assert [k.name for k in topo.kinds] == ["uniform"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scope", SCOPES)
def test_scope_is_what_the_rules_give_on_hwlocs_tree(hwloc_machine, name, scope):
    root, topo, hw = hwloc_machine(name)
    want = expected_scope(hw, root, scope)
    try:
        p = resolve_scope(topo, scope)
    except ScopeUnavailable as e:
        assert want is None, f"{scope} unavailable ({e.reason}); hwloc's tree gives {want}"
        return
    assert p.cpus == want
    by_first = {c.pus[0]: c for c in hw.cores}
    chosen = [by_first[c] for c in p.cpus]
    if scope.startswith("cores:"):                  # one kind, one package, one thread per core
        assert len({c.kind for c in chosen}) == 1 and len({c.package for c in chosen}) == 1
        assert list(p.core_kinds.values()) == [len(p.cpus)]
    assert sum(p.core_kinds.values()) == len(chosen)
    if topo.numa_problem:
        assert p.numa_nodes == () and p.numa_warning == topo.numa_problem
    else:
        assert p.numa_nodes == tuple(sorted({c.node for c in chosen if c.node is not None}))
