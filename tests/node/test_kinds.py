"""``node.kinds.detect_kinds`` on small sysfs trees built under tmp_path: Intel's hybrid PMU
devices, Arm MIDR part numbers (sysfs register or /proc/cpuinfo), cpu_capacity, base and
maximum clocks, the 10 % rule, and the order in which these are believed."""
from __future__ import annotations

from pathlib import Path

import pytest

from hrvs_ray.node.kinds import detect_kinds, kind_names
from hrvs_ray.node.topology import read_topology

A76, A55, X925 = (0x41, 0xD0B), (0x41, 0xD05), (0x41, 0xD85)


def _tree(root: Path, n: int, per_cpu: dict[str, dict[int, int]] | None = None) -> dict[int, Path]:
    """cpu0..cpu{n-1} under root, each with the given files (relative path -> {cpu: value})."""
    dirs = {c: root / f"sys/devices/system/cpu/cpu{c}" for c in range(n)}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for rel, values in (per_cpu or {}).items():
        for cpu, v in values.items():
            (dirs[cpu] / rel).parent.mkdir(parents=True, exist_ok=True)
            (dirs[cpu] / rel).write_text(f"{v}\n")
    return dirs


def _midr(implementer: int, part: int) -> str:
    return f"{implementer << 24 | 0x4 << 20 | 0xF << 16 | part << 4 | 0x1:#018x}"


def _kinds(root: Path, dirs: dict[int, Path], online: tuple[int, ...] | None = None, info=None, l2=None):
    ks = detect_kinds(root, dirs, tuple(sorted(dirs)) if online is None else online, info or {},
                      l2 or (lambda cpu: None))
    return [(k.name, k.basis, k.evidence, k.cpus) for k in ks]


def test_kind_names():
    assert kind_names(1) == ["uniform"] and kind_names(0) == ["uniform"]
    assert kind_names(2) == ["performance", "efficiency"]
    assert kind_names(4) == ["performance", "mid-1", "mid-2", "efficiency"]


def test_nothing_to_tell_cores_apart_is_one_uniform_kind(tmp_path):
    dirs = _tree(tmp_path, 4)
    assert _kinds(tmp_path, dirs) == [("uniform", "none", "no hybrid cores detected", (0, 1, 2, 3))]


def test_capacity_splits_fastest_first(tmp_path):
    dirs = _tree(tmp_path, 6, {"cpu_capacity": {0: 512, 1: 512, 2: 1024, 3: 1024, 4: 512, 5: 1010}})
    assert _kinds(tmp_path, dirs) == [("performance", "cpu_capacity", "cpu_capacity 1019", (2, 3, 5)),
                                      ("efficiency", "cpu_capacity", "cpu_capacity 512", (0, 1, 4))]


def test_values_within_ten_percent_are_one_kind(tmp_path):
    # 930 is 9.2 % below 1024: one kind; 921 is 10.06 % below: another
    dirs = _tree(tmp_path, 3, {"cpu_capacity": {0: 1024, 1: 930, 2: 930}})
    assert [k[0] for k in _kinds(tmp_path, dirs)] == ["uniform"]
    dirs = _tree(tmp_path / "b", 3, {"cpu_capacity": {0: 1024, 1: 921, 2: 921}})
    assert [k[0] for k in _kinds(tmp_path / "b", dirs)] == ["performance", "efficiency"]


def test_three_capacities_are_three_kinds(tmp_path):
    dirs = _tree(tmp_path, 3, {"cpu_capacity": {0: 400, 1: 1024, 2: 700}})
    assert [(k[0], k[3]) for k in _kinds(tmp_path, dirs)] == [("performance", (1,)), ("mid-1", (2,)),
                                                              ("efficiency", (0,))]


def test_the_first_clock_every_cpu_exposes_decides(tmp_path):
    # capacity missing on one CPU: not a source. Equal base clocks: one kind, although two
    # favoured cores boost 4 % higher and two others 30 % lower (max is not consulted)
    base = {c: 2_000_000 for c in range(4)}
    mx = {0: 4_800_000, 1: 4_800_000, 2: 3_300_000, 3: 3_300_000}
    dirs = _tree(tmp_path, 4, {"cpu_capacity": {0: 1024, 1: 1024, 2: 512}, "cpufreq/base_frequency": base,
                               "cpufreq/cpuinfo_max_freq": mx})
    assert [k[0] for k in _kinds(tmp_path, dirs)] == ["uniform"]


def test_the_maximum_clock_when_nothing_else_is_exposed(tmp_path):
    dirs = _tree(tmp_path, 4, {"cpufreq/cpuinfo_max_freq": {0: 3_000_000, 1: 3_000_000, 2: 2_000_000,
                                                             3: 2_100_000}})
    assert _kinds(tmp_path, dirs) == [
        ("performance", "cpuinfo_max_freq", "cpuinfo_max_freq 3000 MHz", (0, 1)),
        ("efficiency", "cpuinfo_max_freq", "cpuinfo_max_freq 2050 MHz", (2, 3))]


def test_base_frequency_splits_intel_hybrid(tmp_path):
    dirs = _tree(tmp_path, 4, {"cpufreq/base_frequency": {0: 1_000_000, 1: 1_000_000, 2: 2_400_000,
                                                           3: 2_400_000}})
    assert _kinds(tmp_path, dirs)[0] == ("performance", "base_frequency", "base_frequency 2400 MHz", (2, 3))


def test_midr_parts_are_kinds_ranked_by_capacity_even_where_capacities_disagree(tmp_path):
    # like a GB10: the big cores' capacities differ by more than 10 %, yet one part is one kind
    midr = {0: _midr(*A55), 1: _midr(*A55), 2: _midr(*X925), 3: _midr(*X925)}
    cap = {0: 400, 1: 400, 2: 1024, 3: 880}
    dirs = _tree(tmp_path, 4, {"regs/identification/midr_el1": midr, "cpu_capacity": cap})
    assert _kinds(tmp_path, dirs) == [
        ("performance", "MIDR part", "MIDR 0x41:0xd85, cpu_capacity 952 on average", (2, 3)),
        ("efficiency", "MIDR part", "MIDR 0x41:0xd05, cpu_capacity 400 on average", (0, 1))]


def test_midr_from_proc_cpuinfo_ranked_by_l2_size(tmp_path):
    dirs = _tree(tmp_path, 4)
    info = {c: {"CPU implementer": "0x41", "CPU part": hex(A76[1] if c >= 2 else A55[1])} for c in range(4)}
    l2 = {0: 128, 1: 128, 2: 512, 3: 512}
    got = _kinds(tmp_path, dirs, info=info, l2=l2.get)
    assert got == [("performance", "MIDR part", "MIDR 0x41:0xd0b, L2 512 KiB per core", (2, 3)),
                   ("efficiency", "MIDR part", "MIDR 0x41:0xd05, L2 128 KiB per core", (0, 1))]


def test_midr_without_anything_to_rank_by_keeps_cpu_order(tmp_path):
    dirs = _tree(tmp_path, 4, {"regs/identification/midr_el1": {0: _midr(*A76), 1: _midr(*A76),
                                                                  2: _midr(*A55), 3: _midr(*A55)}})
    got = _kinds(tmp_path, dirs)
    assert [(k[0], k[3]) for k in got] == [("performance", (0, 1)), ("efficiency", (2, 3))]
    assert "no capacity, clock or L2 size" in got[0][2]


def test_one_midr_part_falls_through_to_capacity(tmp_path):
    dirs = _tree(tmp_path, 2, {"regs/identification/midr_el1": {0: _midr(*A76), 1: _midr(*A76)},
                               "cpu_capacity": {0: 1024, 1: 300}})
    assert [k[1] for k in _kinds(tmp_path, dirs)] == ["cpu_capacity", "cpu_capacity"]


@pytest.mark.parametrize("base", ["sys/bus/event_source/devices", "sys/devices"])
def test_intel_pmu_devices_are_believed_first(tmp_path, base):
    # equal clocks, and capacities that would rank the other way: the kernel's split wins
    dirs = _tree(tmp_path, 6, {"cpufreq/base_frequency": {c: 2_000_000 for c in range(6)},
                               "cpu_capacity": {0: 300, 1: 300, 2: 1024, 3: 1024, 4: 1024, 5: 1024}})
    for dev, cpus in (("cpu_core", "0-1"), ("cpu_atom", "2-5")):
        (tmp_path / base / dev).mkdir(parents=True)
        (tmp_path / base / dev / "cpus").write_text(cpus + "\n")
    assert _kinds(tmp_path, dirs) == [("performance", "PMU devices", "PMU cpu_core", (0, 1)),
                                      ("efficiency", "PMU devices", "PMU cpu_atom", (2, 3, 4, 5))]
    # offline CPUs are left out of the kinds
    assert _kinds(tmp_path, dirs, online=(0, 2, 3))[1][3] == (2, 3)


def test_pmu_devices_that_miss_an_online_cpu_are_not_believed(tmp_path):
    dirs = _tree(tmp_path, 4, {"cpu_capacity": {0: 1024, 1: 1024, 2: 400, 3: 400}})
    for dev, cpus in (("cpu_core", "0"), ("cpu_atom", "2")):
        (tmp_path / "sys/devices" / dev).mkdir(parents=True)
        (tmp_path / "sys/devices" / dev / "cpus").write_text(cpus + "\n")
    assert [(k[1], k[3]) for k in _kinds(tmp_path, dirs)] == [("cpu_capacity", (0, 1)), ("cpu_capacity", (2, 3))]


def test_read_topology_gives_every_core_its_kind(tmp_path):
    per = {"topology/core_id": {c: c for c in range(4)}, "topology/physical_package_id": {c: 0 for c in range(4)},
           "cpu_capacity": {0: 1024, 1: 1024, 2: 450, 3: 450}}
    _tree(tmp_path, 4, per)
    (tmp_path / "sys/devices/system/cpu/online").write_text("0-3\n")
    topo = read_topology(tmp_path)
    assert [k.name for k in topo.kinds] == ["performance", "efficiency"]
    assert {c.first: c.kind for c in topo.cores} == {0: "performance", 1: "performance", 2: "efficiency",
                                                    3: "efficiency"}
