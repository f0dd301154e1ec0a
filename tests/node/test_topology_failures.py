"""The failure classes that used to give wrong scopes, each as a named test on recorded machines
(hwloc's snapshots) or on a copy edited to show one trait: hybrid cores, Arm kinds by MIDR,
Intel's hybrid PMU devices, multi-die packages, contradictory NUMA data, cgroup memory nodes,
NUL-padded sysfs files, and topology that cannot be read at all."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from hrvs_ray.node.topology import ScopeUnavailable, TopologyError, read_topology, resolve_scope
from tests.fixtures.hwloc_oracle import read_hwloc
from tests.helpers import HWLOC_DIR, REPO, snapshot, unpack


@pytest.fixture
def snap(tmp_path):
    """snap(name) -> (root of a fresh, editable copy, hwloc's answer)."""
    def get(name: str):
        root, answer = snapshot(name, tmp_path)
        return root, read_hwloc(answer)
    return get


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---- hybrid CPUs ------------------------------------------------------------------------

def test_hybrid_intel_cores_never_mix_kinds(snap):
    root, hw = snap("20em64t-hybrid-1p6c2t+2ca4co1t")
    topo = read_topology(root)
    p_cores = [c for c in hw.cores if c.kind == 0]
    e_cores = [c for c in hw.cores if c.kind == 1]
    assert [k.name for k in topo.kinds] == ["performance", "efficiency"] and topo.kinds[0].basis == "base_frequency"
    for n in range(1, len(hw.cores) + 2):
        scope = f"cores:{n}"
        if n > max(len(p_cores), len(e_cores)):
            with pytest.raises(ScopeUnavailable, match="physical cores of one kind in one socket"):
                resolve_scope(topo, scope)
            continue
        p = resolve_scope(topo, scope)
        kind, pool = ("performance", p_cores) if n <= len(p_cores) else ("efficiency", e_cores)
        assert p.core_kind == kind and p.core_kinds == {kind: n}
        assert p.cpus == tuple(c.pus[0] for c in pool[:n])       # one thread of each of the first n cores
    for scope in ("socket", "node"):
        p = resolve_scope(topo, scope)
        assert p.core_kind == "mixed" and p.core_kinds == {"performance": len(p_cores), "efficiency": len(e_cores)}


def test_intel_hybrid_pmu_devices_tell_kinds_apart_without_clocks(snap):
    root, hw = snap("20em64t-hybrid-1p6c2t+2ca4co1t")
    shutil.rmtree(root / "sys/devices/system/cpu/cpufreq")    # cpuN/cpufreq link into it: clocks gone
    assert [k.name for k in read_topology(root).kinds] == ["uniform"]      # nothing left to tell them apart
    fmt = lambda pus: ",".join(map(str, sorted(pus)))                      # noqa: E731
    _write(root / "sys/bus/event_source/devices/cpu_core/cpus", fmt(hw.kinds[0]) + "\n")
    _write(root / "sys/bus/event_source/devices/cpu_atom/cpus", fmt(hw.kinds[1]) + "\n")
    topo = read_topology(root)
    assert [(k.name, k.basis, set(k.cpus)) for k in topo.kinds] == [
        ("performance", "PMU devices", set(hw.kinds[0])), ("efficiency", "PMU devices", set(hw.kinds[1]))]


def _gb10(tmp_path: Path):
    root = unpack(HWLOC_DIR / "nvidia-dgx-gb10.tar.bz2", tmp_path / "gb10")
    return root, read_hwloc(HWLOC_DIR / "nvidia-dgx-gb10.xml")


@pytest.mark.slow
def test_arm_kinds_come_from_the_midr_part_not_capacity(tmp_path):
    root, hw = _gb10(tmp_path)
    caps = {(root / f"sys/devices/system/cpu/cpu{c}/cpu_capacity").read_text().strip() for c in hw.pus}
    assert len(caps) > 2                       # the trap: capacities alone suggest more kinds
    topo = read_topology(root)
    assert [(k.basis, set(k.cpus)) for k in topo.kinds] == [("MIDR part", set(pus)) for pus in hw.kinds]
    p = resolve_scope(topo, "cores:4")
    assert p.core_kind == "performance" and set(p.cpus) <= set(hw.kinds[0])
    # without MIDR registers or cpuinfo part numbers, capacities within 10 % are one kind
    for f in root.glob("sys/devices/system/cpu/cpu*/regs/identification/midr_el1"):
        f.unlink()
    info = root / "proc/cpuinfo"
    info.write_text("".join(ln for ln in info.read_text().splitlines(True) if not ln.startswith("CPU part")))
    topo = read_topology(root)
    assert [(k.basis, set(k.cpus)) for k in topo.kinds] == [("cpu_capacity", set(pus)) for pus in hw.kinds]


# ---- dies and L3 domains ----------------------------------------------------------------

@pytest.mark.slow
def test_multi_die_cores_stay_in_one_die_and_l3(snap):
    root, _ = snap("fakecpuid1f-64intel64-2p4d2n2c2t")
    topo = read_topology(root)
    cpu = root / "sys/devices/system/cpu"
    for n in (2, 4):
        p = resolve_scope(topo, f"cores:{n}")
        dies = {(cpu / f"cpu{c}/topology/physical_package_id").read_text()
                + (cpu / f"cpu{c}/topology/die_id").read_text()
                for c in p.cpus}
        l3 = {(cpu / f"cpu{c}/cache/index3/shared_cpu_list").read_text() for c in p.cpus}
        assert len(dies) == 1 and len(l3) == 1, (n, p)
    # two cores fit in one NUMA node here, four do not (2 cores per node, 4 per die)
    assert len(resolve_scope(topo, "cores:2").numa_nodes) == 1
    assert len(resolve_scope(topo, "cores:4").numa_nodes) == 2


# ---- NUMA data that contradicts itself -----------------------------------------------------

def _bound(placement) -> str:
    """apply_placement's memory binding for this placement, in a child (it changes the process)."""
    code = (f"import json\nfrom hrvs_ray.node.affinity import apply_placement\n"
            f"from hrvs_ray.node.topology_types import ScopePlacement\n"
            f"p = ScopePlacement.from_dict(json.loads({json.dumps(json.dumps(placement.to_dict()))}))\n"
            f"print(json.dumps(apply_placement(p).numa_binding))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_buggy_numa_every_cpu_in_every_node_is_not_used_for_binding(snap):
    root, _ = snap("8em64t-2s2ca2c-buggynuma")
    topo = read_topology(root)
    assert topo.numa_problem and "list identical CPUs" in topo.numa_problem
    for scope in ("cores:2", "socket", "node"):
        p = resolve_scope(topo, scope)
        assert p.numa_nodes == () and p.numa_warning == topo.numa_problem
    p = replace(resolve_scope(topo, "cores:1"), cpus=(min(os.sched_getaffinity(0)),))
    assert _bound(p) == f"not bound: {topo.numa_problem}"


@pytest.mark.slow
def test_a_cpu_listed_in_two_nodes_is_detected(snap):
    root, _ = snap("32intel64-2p8co2t+8ve")
    node1 = root / "sys/devices/system/node/node1/cpulist"
    node1.write_text("0," + node1.read_text())
    topo = read_topology(root)
    assert "CPUs 0 are listed in several nodes (0-1)" in (topo.numa_problem or "")
    assert resolve_scope(topo, "socket").numa_nodes == ()


# ---- cgroup cpusets: CPUs and memory nodes ------------------------------------------------

def test_cgroup_memory_nodes_are_honoured(snap):
    root, hw = snap("16amd64-8n2c-cpusets")
    topo = read_topology(root)
    assert sorted(topo.allowed_mems or ()) == hw.numa_nodes
    for scope in ("cores:1", "cores:2", "socket"):
        p = resolve_scope(topo, scope)
        assert set(p.numa_nodes) <= set(topo.allowed_mems) and p.numa_nodes, (scope, p)
    # CPUs whose own node the job may not use: placed, but memory is not bound there
    p = resolve_scope(topo, "cores:2", allowed={0, 1})
    assert p.cpus == (0, 1) and p.numa_nodes == () and "outside this job's memory nodes" in p.numa_warning
    with pytest.raises(ScopeUnavailable, match="not allowed"):
        resolve_scope(topo, "node")


def _cgroup_root(snap, name: str) -> Path:
    root, _ = snap(name)
    for f in ("proc/self/cgroup", "proc/self/mountinfo", "proc/mounts", "proc/self/cpuset"):
        (root / f).unlink(missing_ok=True)
    return root


@pytest.mark.slow
def test_cgroup_v2_cpuset_of_an_ancestor_applies(snap):
    root = _cgroup_root(snap, "32intel64-2p8co2t+8ve")
    _write(root / "proc/self/cgroup", "0::/job/step\n")
    _write(root / "proc/self/mountinfo", "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    _write(root / "sys/fs/cgroup/job/cpuset.cpus.effective", "8-15,24-31\n")
    _write(root / "sys/fs/cgroup/job/cpuset.mems.effective", "1\n")
    (root / "sys/fs/cgroup/job/step").mkdir()            # no cpuset controller in the leaf
    topo = read_topology(root)
    assert topo.allowed_mems == {1} and topo.allowed_cpus == set(range(8, 16)) | set(range(24, 32))
    p = resolve_scope(topo, "cores:4")
    assert set(p.cpus) <= set(range(8, 16)) and p.numa_nodes == (1,)
    assert resolve_scope(topo, "socket").socket == 1
    with pytest.raises(ScopeUnavailable):
        resolve_scope(topo, "node")


@pytest.mark.slow
def test_cgroup_v1_seen_from_inside_a_container_and_proc_status(snap):
    root = _cgroup_root(snap, "32intel64-2p8co2t+8ve")
    _write(root / "proc/self/cgroup", "4:cpuset:/docker/abc\n")
    # the container sees its own cgroup mounted at the hierarchy's mount point (root field /docker/abc)
    _write(root / "proc/self/mountinfo", "40 30 0:30 /docker/abc /sys/fs/cgroup/cpuset ro - cgroup cgroup rw,cpuset\n")
    for name, value in (("cpus", "0-7,16-23"), ("mems", "0-1")):
        _write(root / f"sys/fs/cgroup/cpuset/cpuset.{name}", value + "\n")
        _write(root / f"sys/fs/cgroup/cpuset/cpuset.effective_{name}", value + "\n")
    _write(root / "proc/self/status", "Name:\tx\nCpus_allowed_list:\t0-31\nMems_allowed_list:\t0\n")
    topo = read_topology(root)
    assert topo.allowed_cpus == set(range(0, 8)) | set(range(16, 24)) and topo.allowed_mems == {0}
    assert len(topo.allowed_sources) == 2 and "cgroup v1 /sys/fs/cgroup/cpuset" in topo.allowed_sources[0]


def test_live_allowed_sets_are_this_process():
    topo = read_topology("/")
    assert topo.allowed_cpus == set(os.sched_getaffinity(0))
    status = dict(ln.split(":", 1) for ln in Path("/proc/self/status").read_text().splitlines() if ":" in ln)
    from hrvs_ray.node.sysfs import parse_cpulist
    assert topo.allowed_mems == set(parse_cpulist(status["Mems_allowed_list"]))


# ---- trailing NULs and unreadable topology ----------------------------------------------------

def _placements(topo) -> list:
    out = []
    for scope in ("cores:4", "socket", "node"):
        try:
            out.append(resolve_scope(topo, scope))
        except ScopeUnavailable as e:
            out.append(e.reason)
    return out


@pytest.mark.slow
def test_kunpeng_lists_ending_in_newline_nul(tmp_path):
    root = unpack(HWLOC_DIR / "128arm-2pa2n8cluster4co.tar.bz2", tmp_path)
    assert (root / "sys/devices/system/cpu/cpu0/topology/thread_siblings_list").read_bytes().endswith(b"\n\0")
    topo = read_topology(root)
    assert len(topo.cores) == 128 and len(topo.numa) == 4
    assert resolve_scope(topo, "cores:4").cpus == (0, 1, 2, 3)


@pytest.mark.slow
def test_nul_and_whitespace_padding_changes_nothing(snap, tmp_path):
    clean, _ = snap("32intel64-2p8co2t+8ve")
    padded = tmp_path / "padded"
    shutil.copytree(clean, padded, symlinks=True)
    for dirpath, _, files in os.walk(padded / "sys"):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                p.write_bytes(p.read_bytes() + b" \n\0\0")
    a, b = read_topology(clean), read_topology(padded)
    assert (a.online, a.cores, a.numa, a.caches, a.kinds) == (b.online, b.cores, b.numa, b.caches, b.kinds)
    assert _placements(a) == _placements(b)


def test_unreadable_topology_names_the_file(tmp_path):
    with pytest.raises(TopologyError, match=r"cannot read topology: .*sys/devices/system/cpu: no cpuN directories"):
        read_topology(tmp_path)
    _write(tmp_path / "sys/devices/system/cpu/cpu0/topology/core_id", "0\n")
    _write(tmp_path / "sys/devices/system/cpu/online", "0-x\n")
    with pytest.raises(TopologyError, match=r"cannot read topology: .*cpu/online: not a CPU list: '0-x'"):
        read_topology(tmp_path)
    (tmp_path / "sys/devices/system/cpu/online").write_text("0\n")
    (tmp_path / "sys/devices/system/node/node0/cpulist").mkdir(parents=True)
    with pytest.raises(TopologyError, match=r"node0/cpulist: is a directory"):
        read_topology(tmp_path)


def test_probe_node_reports_an_unreadable_node_as_unusable(monkeypatch):
    from hrvs_ray.cluster import node_probe

    def broken(*_a, **_k):
        raise TopologyError("/sys/devices/system/cpu/online", "not a CPU list: '0-x'")
    monkeypatch.setattr(node_probe, "read_topology", broken)
    got = node_probe.probe_node(["cores:2", "node"])
    reason = "node unusable: cannot read topology: /sys/devices/system/cpu/online: not a CPU list: '0-x'"
    assert got["unusable"] == reason and got["placements"] == {"cores:2": reason, "node": reason}


def _tiny(root: Path, max_khz: list[int], base_khz: list[int] | None) -> Path:
    """A minimal sysfs: one package, one core per CPU, the given clocks."""
    cpu = root / "sys/devices/system/cpu"
    _write(cpu / "online", f"0-{len(max_khz) - 1}\n")
    for i, mx in enumerate(max_khz):
        _write(cpu / f"cpu{i}/topology/physical_package_id", "0\n")
        _write(cpu / f"cpu{i}/topology/core_id", f"{i}\n")
        _write(cpu / f"cpu{i}/topology/thread_siblings_list", f"{i}\n")
        _write(cpu / f"cpu{i}/cpufreq/cpuinfo_max_freq", f"{mx}\n")
        if base_khz:
            _write(cpu / f"cpu{i}/cpufreq/base_frequency", f"{base_khz[i]}\n")
    return root


def test_favoured_cores_boosting_higher_are_not_another_kind(tmp_path):
    # equal base clocks decide, whatever the maximum clocks say
    topo = read_topology(_tiny(tmp_path / "a", [4_000_000] * 2 + [3_500_000] * 2, [2_000_000] * 4))
    assert [k.name for k in topo.kinds] == ["uniform"]
    # no base clock: maximum clocks within 10 % are one kind (Turbo Boost Max 3.0) ...
    assert [k.name for k in read_topology(_tiny(tmp_path / "b", [5_200_000, 5_000_000] * 2, None)).kinds] == ["uniform"]
    # ... further apart, two kinds, and cores:N never mixes them
    topo = read_topology(_tiny(tmp_path / "c", [4_000_000] * 2 + [3_000_000] * 3, None))
    assert [(k.name, k.cpus) for k in topo.kinds] == [("performance", (0, 1)), ("efficiency", (2, 3, 4))]
    assert resolve_scope(topo, "cores:2").cpus == (0, 1) and resolve_scope(topo, "cores:3").cpus == (2, 3, 4)
    with pytest.raises(ScopeUnavailable, match=r"at most 3 \(socket 0: 2 performance \+ 3 efficiency cores\)"):
        resolve_scope(topo, "cores:4")
