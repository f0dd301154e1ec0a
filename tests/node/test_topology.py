"""Scope -> CPU mapping against recorded /sys + /proc snapshots of real machines, and this node."""
from __future__ import annotations

import os
import sys

import pytest

from hrvs_ray.node.topology import ScopeUnavailable, parse_cpulist, parse_cpumask, read_topology, resolve_scope


def r(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b + 1))


def test_parsers():
    assert parse_cpulist("0-3,8,10-11\n") == (0, 1, 2, 3, 8, 10, 11)
    assert parse_cpulist("\n") == ()
    assert parse_cpumask("00000000,00001001\n") == (0, 12)
    assert parse_cpumask("00000101,00000000") == (32, 40)
    assert parse_cpulist("0-3\n\0") == (0, 1, 2, 3) and parse_cpumask("3\n\0\0") == (0, 1)   # NUL padding
    with pytest.raises(ValueError):
        parse_cpulist("3-1")


def test_xeon_silver_2_sockets_smt(machine):
    topo = read_topology(machine("32intel64-2p8co2t+8ve"))
    assert topo.online == r(0, 31)            # cpu/possible says 0-111; only 0-31 online
    assert topo.sockets == (0, 1) and topo.threads_per_core == 2 and len(topo.cores) == 16
    assert topo.numa == {0: r(0, 7) + r(16, 23), 1: r(8, 15) + r(24, 31)}
    assert "Silver 4108" in topo.cpuinfo["model name"]
    l3 = [c for c in topo.caches if c.level == 3]
    assert [(c.size_kib, c.shared_cpus) for c in l3] == [(11264, r(0, 7) + r(16, 23)), (11264, r(8, 15) + r(24, 31))]

    p = resolve_scope(topo, "cores:4")
    assert (p.cpus, p.threads, p.numa_nodes, p.socket) == ((0, 1, 2, 3), 4, (0,), 0)
    assert resolve_scope(topo, "cores:4", smt=True).cpus == (0, 1, 2, 3)   # cores:N is one thread per core
    s = resolve_scope(topo, "socket")
    assert (s.cpus, s.threads, s.numa_nodes, s.socket) == (r(0, 7), 8, (0,), 0)
    assert resolve_scope(topo, "socket", smt=True).cpus == r(0, 7) + r(16, 23)
    n = resolve_scope(topo, "node")
    assert (n.cpus, n.threads, n.numa_nodes, n.socket) == (r(0, 15), 16, (0, 1), None)
    assert resolve_scope(topo, "node", smt=True).threads == 32
    assert resolve_scope(topo, "cores:8").cpus == r(0, 7)
    with pytest.raises(ScopeUnavailable, match=r"cores:9 needs 9 physical cores in one socket; this node has "
                                               r"at most 8 \(socket 0: 8 cores, socket 1: 8 cores\)"):
        resolve_scope(topo, "cores:9")


def test_opteron_compute_units_are_two_cores(machine):
    """The kernel lists each Bulldozer compute unit's pair (0-1, 2-3, ...) as thread siblings but
    gives them different core ids: two cores sharing a front end and FPU, as hwloc and AMD count."""
    topo = read_topology(machine("64amd64-4s2n4ca2co"))
    assert topo.sockets == (0, 1, 2, 3) and len(topo.numa) == 8
    assert len(topo.cores_of(0)) == 16 and topo.threads_per_core == 1
    assert topo.cores[0].unit == (0, 1) and topo.cores[1].cpus == (1,)
    p = resolve_scope(topo, "cores:4")            # one L3 domain and NUMA node 0 (CPUs 0-7)
    assert (p.cpus, p.numa_nodes, p.socket) == ((0, 1, 2, 3), (0,), 0)
    p = resolve_scope(topo, "cores:10")           # no node has 10 cores: the socket's two nodes
    assert (p.cpus, p.numa_nodes, p.socket) == (r(0, 9), (0, 1), 0)
    s = resolve_scope(topo, "socket")
    assert (s.cpus, s.numa_nodes, s.socket) == (r(0, 15), (0, 1), 0)
    assert resolve_scope(topo, "socket", smt=True).cpus == r(0, 15)
    n = resolve_scope(topo, "node")
    assert n.threads == 64 and n.numa_nodes == tuple(range(8))
    with pytest.raises(ScopeUnavailable, match="at most 16"):
        resolve_scope(topo, "cores:17")


def test_sparse_numa_ids(machine):
    topo = read_topology(machine("48amd64-4pa2n6c-sparse"))
    assert tuple(topo.numa) == (0, 1, 2, 33, 34, 45, 72, 73)
    assert topo.numa[33] == r(18, 23) and topo.threads_per_core == 1
    assert topo.sockets == (0, 1, 2, 3) and all(len(topo.cores_of(s)) == 12 for s in topo.sockets)
    assert resolve_scope(topo, "cores:4").cpus == (0, 1, 2, 3)
    assert resolve_scope(topo, "cores:4").numa_nodes == (0,)
    s = resolve_scope(topo, "socket")
    assert (s.cpus, s.numa_nodes) == (r(0, 11), (0, 1))
    assert resolve_scope(topo, "node").numa_nodes == (0, 1, 2, 33, 34, 45, 72, 73)
    assert resolve_scope(topo, "node").cpus == r(0, 47)


def test_offline_cpus_and_missing_node(machine):
    topo = read_topology(machine("offline-cpu0-node0"))
    assert topo.online == r(4, 20)
    # node1's cpulist names offline CPUs too (1, 3, 21, 23): only online ones count.
    assert topo.numa == {1: (5, 7, 9, 11, 13, 15, 17, 19)}
    assert [len(topo.cores_of(s)) for s in topo.sockets] == [9, 8]
    p = resolve_scope(topo, "cores:4")
    assert (p.cpus, p.socket, p.numa_nodes) == ((4, 6, 8, 10), 0, ())   # node0 absent from /sys
    with pytest.raises(ScopeUnavailable, match=r"at most 9 \(socket 0: 9 cores, socket 1: 8 cores\)"):
        resolve_scope(topo, "cores:10")
    assert resolve_scope(topo, "cores:9").cpus == tuple(range(4, 21, 2))
    assert resolve_scope(topo, "node").cpus == r(4, 20)


def test_hex_masks_only_no_online_file(machine):
    topo = read_topology(machine("16em64t-4s2c2t"))
    assert topo.online == r(0, 15) and topo.threads_per_core == 2 and topo.sockets == (0, 1, 2, 3)
    s = resolve_scope(topo, "socket", smt=True)
    assert s.threads == 4 and resolve_scope(topo, "socket").threads == 2
    with pytest.raises(ScopeUnavailable):
        resolve_scope(topo, "cores:4")


def test_unknown_scope_is_a_value_error(machine):
    topo = read_topology(machine("16em64t-4s2c2t"))
    with pytest.raises(ValueError, match="unknown scope"):
        resolve_scope(topo, "cores:0")


def _restricted(topo) -> bool:
    """Whether this process may use fewer CPUs than the node has online (taskset, a cpuset)."""
    return len(os.sched_getaffinity(0)) < len(topo.online)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this node's /sys")
def test_live_machine():
    topo = read_topology("/")
    online = tuple(sorted(os.sched_getaffinity(0))) if len(os.sched_getaffinity(0)) == os.cpu_count() else None
    if online is not None:
        assert topo.online == online
    if _restricted(topo):    # taskset / a cpuset: node is refused rather than shrunk, and says why
        with pytest.raises(ScopeUnavailable, match="not allowed"):
            resolve_scope(topo, "node")
        return
    n = resolve_scope(topo, "node")
    assert n.threads == len(topo.cores) and n.threads >= 1
    cores_per_socket = max(len(topo.cores_of(s)) for s in topo.sockets)
    p = resolve_scope(topo, f"cores:{cores_per_socket}")
    assert p.threads == cores_per_socket
    with pytest.raises(ScopeUnavailable, match=f"needs {cores_per_socket + 1} physical cores in one socket"):
        resolve_scope(topo, f"cores:{cores_per_socket + 1}")


def test_live_machine_is_the_two_core_vm():
    """The shared dev box (2 CPUs, 1 socket): node and cores:2 work, cores:4 is skipped."""
    topo = read_topology("/")
    if (len(topo.online), topo.sockets, topo.threads_per_core) != (2, (0,), 1):
        pytest.skip("not the 2-CPU development VM")
    if _restricted(topo):
        pytest.skip("this process may not use every CPU (taskset or a cpuset): test_live_machine checks that")
    assert resolve_scope(topo, "node").cpus == (0, 1)
    assert resolve_scope(topo, "cores:2").cpus == (0, 1)
    with pytest.raises(ScopeUnavailable, match=r"at most 2 \(socket 0: 2 cores\)"):
        resolve_scope(topo, "cores:4")


def test_scopes_respect_the_allowed_cpu_set(machine):
    """A SLURM allocation or cgroup cpuset: cores:N picks allowed cores, socket takes a wholly
    allowed socket, node is refused rather than shrunk."""
    from hrvs_ray.node.topology import restrict

    topo = read_topology(machine("32intel64-2p8co2t+8ve"))
    allowed = {c.cpus[0] for c in topo.cores_of(topo.sockets[1])}     # one thread of each core of socket 1
    p = resolve_scope(topo, "cores:4", allowed=allowed)
    assert set(p.cpus) <= allowed and len(p.cpus) == 4 and p.socket == topo.sockets[1]
    assert resolve_scope(topo, "socket", allowed=allowed | set(topo.online)) == resolve_scope(topo, "socket")
    s = resolve_scope(topo, "socket", allowed=allowed)          # socket 0 is not allowed: socket 1 is whole
    assert (s.cpus, s.socket, s.numa_nodes) == (r(8, 15), 1, (1,))
    with pytest.raises(ScopeUnavailable, match=r"this process may use only 8-15 .*socket 1: 24-31 not allowed"):
        resolve_scope(topo, "socket", smt=True, allowed=allowed)   # its second threads are not
    with pytest.raises(ScopeUnavailable, match="0-7,16-23 not allowed"):
        resolve_scope(topo, "node", allowed=allowed)
    with pytest.raises(ScopeUnavailable, match="at most 8"):
        resolve_scope(topo, "cores:9", allowed=allowed)
    assert len(restrict(topo, allowed).cores) == 8
