"""Node topology from ``/sys`` + ``/proc`` (live, or a recorded snapshot under ``root``).

Pure: standard library only (no torch, no ray), so it runs before torch is imported and on
recorded snapshots (``read_topology(root=snapshot)``). The scope rules live in
:mod:`.placement`; this module re-exports them so callers need one import.

Definitions (the answers follow from the files, nothing is looked up in a table):

* online CPUs: ``cpu/online``; without it, ``cpuN/online`` (a CPU without that file,
  usually cpu0, cannot be offlined and counts as online).
* a physical core: the online CPUs of one ``thread_siblings_list`` (Linux's "hardware threads
  of one core"; then ``core_cpus_list``, the hex masks, and finally equal
  ``(package, die, core_id)``). When siblings carry *different* ``core_id`` values the kernel is
  describing cores that share a front end (AMD Bulldozer compute units on older kernels), and
  each CPU is its own core -- hwloc's rule too, so an Opteron 6276 has 16 cores per package.
* dies: ``die_id`` (0 where absent); L3 domains: the CPUs of one level-3 unified cache.
* NUMA nodes: ``node/nodeN/cpulist`` intersected with the online CPUs. A CPU listed in no
  node has no node. A CPU listed in several nodes makes the NUMA data contradict itself:
  ``numa_problem`` says so and no placement binds memory on that node.
* core kinds: :mod:`.kinds`; allowed CPUs and memory nodes: :mod:`.cpusets`.

Reading a file that exists but cannot be read or parsed raises :class:`TopologyError`
("cannot read topology: FILE: problem").
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from .cpusets import read_allowed
from .kinds import detect_kinds
from .placement import resolve_scope, restrict
from .sysfs import (
    TopologyError,
    cpulist_at,
    cpumask_at,
    format_cpulist,
    int_at,
    numbered_dirs,
    optional_int,
    parse_cpulist,
    parse_cpumask,
    read_optional,
    read_text,
)
from .topology_types import Cache, Core, CoreKind, ScopePlacement, ScopeUnavailable, Topology

__all__ = ["Cache", "Core", "CoreKind", "ScopePlacement", "ScopeUnavailable", "Topology", "TopologyError",
           "format_cpulist", "parse_cpulist", "parse_cpumask", "read_topology", "resolve_scope", "restrict"]


def _size_kib(text: str) -> int:
    """sysfs cache size ("32K", "11264K", "1M"; a bare number is bytes) in KiB."""
    m = re.match(r"\s*(\d+)\s*([KMG]?)", text)
    if not m:
        return 0
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[m.group(2)] // 1024


def _online(cpu_root: Path, dirs: dict[int, Path]) -> tuple[int, ...]:
    cpus = cpulist_at(cpu_root / "online")
    if cpus:
        return cpus
    return tuple(c for c, d in dirs.items() if int_at(d / "online") != 0)


def _cpuinfo(root: Path) -> dict[int, dict[str, str]]:
    """processor number -> its fields in /proc/cpuinfo."""
    out: dict[int, dict[str, str]] = {}
    for block in (read_text(root / "proc/cpuinfo") or "").split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()
        if fields.get("processor", "").isdigit():
            out[int(fields["processor"])] = fields
    return out


def _meminfo_total(root: Path) -> int | None:
    for line in (read_optional(root / "proc/meminfo") or "").splitlines():
        parts = line.split()
        if line.startswith("MemTotal:") and len(parts) >= 2 and parts[1].isdigit():
            return int(parts[1]) * 1024
    return None


def _caches(dirs: dict[int, Path], online: tuple[int, ...]) -> tuple[Cache, ...]:
    seen: dict[tuple, Cache] = {}
    for cpu in online:
        for idx in numbered_dirs(dirs[cpu] / "cache", "index").values() if cpu in dirs else ():
            level, ctype, size = optional_int(idx / "level"), read_optional(idx / "type"), read_optional(idx / "size")
            if level is None or not ctype or not size:
                continue
            try:
                shared = cpulist_at(idx / "shared_cpu_list") or cpumask_at(idx / "shared_cpu_map") or (cpu,)
            except TopologyError:
                shared = (cpu,)
            shared = tuple(c for c in shared if c in online) or (cpu,)
            seen.setdefault((level, ctype, shared), Cache(level, ctype, _size_kib(size), shared))
    return tuple(sorted(seen.values(), key=lambda c: (c.level, c.type, c.shared_cpus)))


def _ids(cpu: int, d: Path | None, info: dict[int, dict[str, str]]) -> tuple[int, int, int, tuple[int, ...] | None]:
    """(package, die, core_id, thread siblings or None) of one online CPU."""
    topo = d / "topology" if d is not None else None
    pkg = int_at(topo / "physical_package_id") if topo else None
    core_id = int_at(topo / "core_id") if topo else None
    die = (int_at(topo / "die_id") if topo else None) or 0
    if pkg is None or core_id is None:
        fields = info.get(cpu, {})
        try:
            pkg, core_id = int(fields.get("physical id", 0)), int(fields.get("core id", cpu))
        except ValueError:
            pkg, core_id = 0, cpu
    sibs = None
    if topo:
        sibs = (cpulist_at(topo / "thread_siblings_list") or cpulist_at(topo / "core_cpus_list")
                or cpumask_at(topo / "thread_siblings") or cpumask_at(topo / "core_cpus") or None)
    # -1 is the kernel's "unknown" (some Arm firmware): one package / die then.
    return max(pkg, 0), max(die, 0), core_id, sibs


def _cores(dirs: dict[int, Path], online: tuple[int, ...], info: dict[int, dict[str, str]]) -> list[Core]:
    ids = {cpu: _ids(cpu, dirs.get(cpu), info) for cpu in online}
    cores: dict[tuple[int, ...], Core] = {}
    for cpu in online:
        pkg, die, core_id, sibs = ids[cpu]
        if sibs is None:
            sibs = tuple(c for c in online if ids[c][:3] == (pkg, die, core_id))
        unit = tuple(c for c in sibs if c in ids) or (cpu,)
        # siblings with other core ids are distinct cores sharing a unit (see the module docstring)
        sibs = (cpu,) if any(ids[s][:3] != (pkg, die, core_id) for s in unit) else unit
        cores.setdefault(sibs, Core(pkg, core_id, sibs, die, unit=unit))
    return list(cores.values())


def _compact_order(cores: list[Core], caches: tuple[Cache, ...]) -> list[Core]:
    """Package, die, then cores sharing an L3, then an L2, next to each other (hwloc's order):
    the first N cores of a group are the most closely coupled ones."""
    lead = {lvl: {cpu: min(c.shared_cpus) for c in caches if c.level == lvl and c.type == "Unified"
                  for cpu in c.shared_cpus} for lvl in (2, 3)}
    return sorted(cores, key=lambda c: (c.package, c.die, lead[3].get(c.first, -1), lead[2].get(c.first, c.first),
                                        c.first))


def _numa(root: Path, online: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    on = set(online)
    numa = {}
    for n, nd in numbered_dirs(root / "sys/devices/system/node", "node").items():
        cpus = cpulist_at(nd / "cpulist")
        if cpus is None:
            cpus = cpumask_at(nd / "cpumap")
        if cpus is None:
            raise TopologyError(nd / "cpulist", "missing (and no cpumap)")
        numa[n] = tuple(c for c in cpus if c in on)
    return numa


def numa_problem(numa: dict[int, tuple[int, ...]]) -> str | None:
    """Why the NUMA data contradicts itself (a CPU in several nodes), or None."""
    owners: dict[int, list[int]] = {}
    for n, cpus in numa.items():
        for c in cpus:
            owners.setdefault(c, []).append(n)
    shared = {c: ns for c, ns in owners.items() if len(ns) > 1}
    if not shared:
        return None
    same: dict[tuple[int, ...], list[int]] = {}
    for n, cpus in numa.items():
        if cpus:
            same.setdefault(cpus, []).append(n)
    dup = [ns for ns in same.values() if len(ns) > 1]
    if dup:
        nodes = ", ".join(format_cpulist(ns) for ns in dup)
        return f"NUMA data contradicts itself: nodes {nodes} list identical CPUs; memory is not bound"
    nodes = sorted({n for ns in shared.values() for n in ns})
    return (f"NUMA data contradicts itself: CPUs {format_cpulist(shared)} are listed in several nodes "
            f"({format_cpulist(nodes)}); memory is not bound")


def _l2_per_core(caches: tuple[Cache, ...], cores: list[Core]):
    firsts = {c.first for c in cores}

    def l2_kib(cpu: int) -> int | None:
        for c in caches:
            if c.level == 2 and cpu in c.shared_cpus:
                return c.size_kib // max(1, sum(1 for x in c.shared_cpus if x in firsts))
        return None
    return l2_kib


def read_topology(root: str | Path = "/") -> Topology:
    """Read the node's topology under ``root`` (``/`` or a recorded snapshot)."""
    root = Path(root)
    cpu_root = root / "sys/devices/system/cpu"
    dirs = numbered_dirs(cpu_root, "cpu")
    info = _cpuinfo(root)
    if not dirs and not info:
        raise TopologyError(cpu_root, "no cpuN directories, and no processor in "
                                      f"{root / 'proc/cpuinfo'} (is {root} the folder holding sys/ and proc/?)")
    online = _online(cpu_root, dirs) if dirs else tuple(sorted(info))
    caches = _caches(dirs, online)
    cores = _compact_order(_cores(dirs, online, info), caches)
    kinds = detect_kinds(root, dirs, online, info, _l2_per_core(caches, cores))
    kind_of = {cpu: k.name for k in kinds for cpu in k.cpus}
    cores = [replace(c, kind=kind_of.get(c.first, kinds[0].name)) for c in cores]
    numa = _numa(root, online)
    allowed = read_allowed(root, live=root.resolve() == Path("/"))
    first = info[min(info)] if info else {}
    return Topology(root=str(root), online=online, cores=tuple(cores), numa=numa, caches=caches,
                    cpuinfo=first, mem_total_bytes=_meminfo_total(root), kinds=kinds,
                    numa_problem=numa_problem(numa), allowed_cpus=allowed.cpus, allowed_mems=allowed.mems,
                    allowed_sources=allowed.sources)
