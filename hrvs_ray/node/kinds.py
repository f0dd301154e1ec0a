"""Core kinds on hybrid CPUs (Intel P/E cores, Arm big/LITTLE), from what the kernel exposes.

Sources, in the order they are believed (the first that tells two or more kinds apart wins):

1. Intel's hybrid PMU devices ``cpu_core`` / ``cpu_atom`` (``sys/bus/event_source/devices/*/cpus``
   or ``sys/devices/cpu_core/cpus``): the kernel's own split into P-cores and E-cores.
2. The MIDR (implementer + part number; ``cpuN/regs/identification/midr_el1`` or ``/proc/cpuinfo``):
   on Arm, one part number is one microarchitecture. Believed before capacities and clocks,
   which also differ between cores of one kind (binning, firmware tables; on an NVIDIA GB10
   ``cpu_capacity`` shows five values for two kinds).
3. ``cpu_capacity``, 4. ``cpufreq/base_frequency``, 5. ``cpufreq/cpuinfo_max_freq``: the first of
   these that every CPU exposes decides, and values that lie within 10 % of each other are one kind
   (favoured-core boosts such as Turbo Boost Max 3.0 make a few P-cores report a 4 % higher maximum
   clock; they are not another kind).

Ranking, fastest first: ``cpu_core`` before ``cpu_atom``; a higher capacity or clock first; MIDR
kinds by their cores' mean capacity, else base clock, else maximum clock, else per-core L2 size.
One kind is named ``uniform``; two are ``performance`` and ``efficiency``; more add ``mid-1``, ...
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from statistics import mean

from .sysfs import cpulist_at, optional_int
from .topology_types import CoreKind

CLUSTER_GAP = 0.10      # values closer than this (relative) are one kind


def kind_names(n: int) -> list[str]:
    if n <= 1:
        return ["uniform"]
    return ["performance"] + [f"mid-{i}" for i in range(1, n - 1)] + ["efficiency"]


def _pmu_split(root: Path, online: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]] | None:
    for base in (root / "sys/bus/event_source/devices", root / "sys/devices"):
        core, atom = cpulist_at(base / "cpu_core/cpus"), cpulist_at(base / "cpu_atom/cpus")
        if core and atom:
            on = set(online)
            groups = [("PMU cpu_core", tuple(c for c in core if c in on)),
                      ("PMU cpu_atom", tuple(c for c in atom if c in on))]
            if all(cpus for _, cpus in groups) and set(core) | set(atom) >= on:
                return groups
    return None


def _midr(dirs: dict[int, Path], online: tuple[int, ...],
          info: dict[int, dict[str, str]]) -> dict[int, str] | None:
    """cpu -> 'implementer:part', from sysfs MIDR registers, else /proc/cpuinfo."""
    out: dict[int, str] = {}
    for cpu in online:
        reg = optional_int(dirs[cpu] / "regs/identification/midr_el1") if cpu in dirs else None
        if reg is not None:
            out[cpu] = f"{reg >> 24 & 0xff:#04x}:{reg >> 4 & 0xfff:#05x}"
            continue
        fields = info.get(cpu, {})
        if "CPU implementer" in fields and "CPU part" in fields:
            try:
                out[cpu] = f"{int(fields['CPU implementer'], 16):#04x}:{int(fields['CPU part'], 16):#05x}"
            except ValueError:
                return None
    return out if len(out) == len(online) else None


def _per_cpu(dirs: dict[int, Path], online: tuple[int, ...], rel: str) -> dict[int, int] | None:
    vals = {cpu: optional_int(dirs[cpu] / rel) if cpu in dirs else None for cpu in online}
    return vals if online and all(v is not None and v > 0 for v in vals.values()) else None  # type: ignore[misc]


def _clusters(values: dict[int, int]) -> list[tuple[int, ...]]:
    """CPUs grouped by value, highest first; a new group starts at a gap of more than 10 %."""
    groups: list[list[int]] = []
    prev = None
    for cpu, v in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])):
        if prev is None or v < prev * (1 - CLUSTER_GAP):
            groups.append([])
        groups[-1].append(cpu)
        prev = v
    return [tuple(sorted(g)) for g in groups]


def _unit(rel: str, v: float) -> str:
    return f"{rel.split('/')[-1]} {v / 1000:.0f} MHz" if "freq" in rel else f"{rel} {v:.0f}"


def _midr_ranked(dirs: dict[int, Path], groups: dict[str, tuple[int, ...]],
                 l2_kib: Callable[[int], int | None]) -> list[tuple[str, tuple[int, ...]]]:
    """MIDR groups, fastest first, by the best signal every CPU exposes."""
    cpus = tuple(c for g in groups.values() for c in g)
    for rel in ("cpu_capacity", "cpufreq/base_frequency", "cpufreq/cpuinfo_max_freq"):
        vals = _per_cpu(dirs, cpus, rel)
        if vals:
            score = {k: mean(vals[c] for c in g) for k, g in groups.items()}
            return [(f"MIDR {k}, {_unit(rel, score[k])} on average", groups[k])
                    for k in sorted(groups, key=lambda k: (-score[k], groups[k][0]))]
    l2 = {k: [l2_kib(c) for c in g] for k, g in groups.items()}
    if all(v is not None for vs in l2.values() for v in vs):
        score = {k: mean(v for v in vs if v is not None) for k, vs in l2.items()}
        return [(f"MIDR {k}, L2 {score[k]:.0f} KiB per core", groups[k])
                for k in sorted(groups, key=lambda k: (-score[k], groups[k][0]))]
    return [(f"MIDR {k} (no capacity, clock or L2 size to rank by)", g)
            for k, g in sorted(groups.items(), key=lambda kv: kv[1][0])]


def detect_kinds(root: Path, dirs: dict[int, Path], online: tuple[int, ...],
                 info: dict[int, dict[str, str]], l2_kib: Callable[[int], int | None]) -> tuple[CoreKind, ...]:
    """The core kinds of the online CPUs, fastest first (one kind when nothing tells them apart)."""
    found: list[tuple[str, tuple[int, ...]]] | None = None
    basis = "none"
    if (pmu := _pmu_split(root, online)) is not None:
        found, basis = pmu, "PMU devices"
    elif (midr := _midr(dirs, online, info)) is not None and len(set(midr.values())) > 1:
        groups: dict[str, list[int]] = {}
        for cpu, key in midr.items():
            groups.setdefault(key, []).append(cpu)
        found = _midr_ranked(dirs, {k: tuple(v) for k, v in groups.items()}, l2_kib)
        basis = "MIDR part"
    else:
        for rel in ("cpu_capacity", "cpufreq/base_frequency", "cpufreq/cpuinfo_max_freq"):
            vals = _per_cpu(dirs, online, rel)
            if not vals:
                continue
            # the first source every CPU exposes decides: equal base clocks are one kind even
            # when favoured cores boost higher (their cpuinfo_max_freq is not consulted)
            clusters = _clusters(vals)
            if len(clusters) > 1:
                found = [(_unit(rel, mean(vals[c] for c in g)), g) for g in clusters]
                basis = rel.split("/")[-1]
            break
    if not found:
        return (CoreKind("uniform", "none", "no hybrid cores detected", tuple(online)),)
    names = kind_names(len(found))
    return tuple(CoreKind(name, basis, ev, cpus) for name, (ev, cpus) in zip(names, found, strict=False))

