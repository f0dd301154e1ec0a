"""A cgroup-v1 cpuset hierarchy mounted with ``noprefix`` names its files ``cpus`` and ``mems``
(no ``cpuset.`` prefix); hwloc reads them, and so must we. The shared
16em64t-4s2ca2c-cpusetreorder snapshot is one (its scopes are checked against hwloc's answer in
tests/node/test_topology_snapshots.py); here a recorded machine gets a noprefix hierarchy of our own whose
``mems`` restricts the memory nodes."""
from __future__ import annotations

from pathlib import Path

import pytest

from hrvs_ray.node.topology import read_topology, resolve_scope, restrict
from tests.fixtures.hwloc_oracle import read_hwloc
from tests.helpers import snapshot


def _noprefix(root: Path, cpus: str, mems: str) -> None:
    """Put this process in /job of a v1 cpuset hierarchy mounted at /dev/cpuset with noprefix."""
    for f in ("proc/self/cgroup", "proc/self/mountinfo", "proc/mounts", "proc/self/cpuset", "proc/self/status"):
        (root / f).unlink(missing_ok=True)
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/mounts").write_text(
        "none /dev/cpuset cgroup rw,relatime,cpuset,noprefix,release_agent=/sbin/cpuset_release_agent 0 0\n")
    (root / "proc/self/cpuset").write_text("/job\n")
    job = root / "dev/cpuset/job"
    job.mkdir(parents=True)
    (job / "cpus").write_text(cpus + "\n")
    (job / "mems").write_text(mems + "\n")


def test_shared_noprefix_snapshot_allows_what_hwloc_shows(tmp_path):
    root, answer = snapshot("16em64t-4s2ca2c-cpusetreorder", tmp_path)
    topo = read_topology(root)
    assert topo.allowed_cpus == {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13} == read_hwloc(answer).pus
    assert any("v1-noprefix /dev/cpuset/prout: cpus 2-11,13, mems 0" in s for s in topo.allowed_sources)
    assert set(resolve_scope(topo, "cores:2").cpus) <= topo.allowed_cpus   # was 0 and 4: not allowed
    assert len(restrict(topo, topo.allowed_cpus).online) == 11


@pytest.mark.slow
def test_noprefix_mems_keep_memory_off_nodes_the_job_may_not_use(tmp_path):
    root, _ = snapshot("64amd64-4s2n4ca2co", tmp_path)        # node k holds CPUs 8k..8k+7
    _noprefix(root, "0-3", "2-3")                              # the machine: CPUs in node 0 only
    topo = read_topology(root)
    assert topo.allowed_cpus == {0, 1, 2, 3} and topo.allowed_mems == {2, 3}
    p = resolve_scope(topo, "cores:4")
    assert p.cpus == (0, 1, 2, 3) and 0 not in p.numa_nodes and set(p.numa_nodes) <= {2, 3}
    assert "outside this job's memory nodes" in (p.numa_warning or "")


@pytest.mark.slow
def test_noprefix_mems_bind_cores_to_the_allowed_node(tmp_path):
    root, _ = snapshot("64amd64-4s2n4ca2co", tmp_path)
    _noprefix(root, "0-3,16-23", "2")
    topo = read_topology(root)
    assert topo.allowed_mems == {2}
    p = resolve_scope(topo, "cores:4")       # socket 0's CPUs 0-3 sit in node 0: memory could not be bound
    assert p.cpus == (16, 17, 18, 19) and p.numa_nodes == (2,) and p.numa_warning is None
