"""The node's topology as data, and a scope's placement on it. Pure dataclasses, no I/O.

``ScopePlacement`` crosses the Ray boundary (driver -> the cell's process) and is recorded with the
results, so it holds only plain values: it pickles, and :meth:`ScopePlacement.to_dict` is
JSON as it stands.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from ..errors import InternalError


class ScopeUnavailable(InternalError):
    """This node cannot provide the scope; ``reason`` says why (the cell is skipped, not failed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Core:
    package: int
    core_id: int
    cpus: tuple[int, ...]          # online hardware threads of this core, ascending
    die: int = 0                   # die_id inside the package (0 where the kernel has no dies)
    kind: str = "uniform"          # name of its CoreKind
    unit: tuple[int, ...] = ()     # the kernel's thread siblings: == cpus, except for cores sharing
    #                                one front end and FPU (AMD Bulldozer compute units)

    @property
    def first(self) -> int:
        return self.cpus[0]


@dataclass(frozen=True)
class Cache:
    level: int
    type: str                      # Data | Instruction | Unified
    size_kib: int
    shared_cpus: tuple[int, ...]


@dataclass(frozen=True)
class CoreKind:
    """One kind of core (hybrid CPUs have two or more), ranked fastest first."""
    name: str                      # "uniform" on a one-kind machine; else "performance", ..., "efficiency"
    basis: str                     # how kinds were told apart: "cpu_capacity", "MIDR part", ...
    evidence: str                  # what this kind's cores showed, e.g. "base_frequency 1900 MHz"
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class Topology:
    root: str
    online: tuple[int, ...]
    cores: tuple[Core, ...]                          # by package, die, shared L3, shared L2, first cpu
    numa: dict[int, tuple[int, ...]] = field(hash=False)   # node -> online CPUs, as the kernel lists them
    caches: tuple[Cache, ...] = ()                   # one entry per distinct cache instance
    cpuinfo: dict[str, str] = field(default_factory=dict, hash=False)  # first processor's fields
    mem_total_bytes: int | None = None
    kinds: tuple[CoreKind, ...] = ()                 # fastest first; () only for a topology built by hand
    numa_problem: str | None = None                  # why the NUMA data cannot be trusted, if it cannot
    allowed_cpus: frozenset[int] | None = None       # None: no restriction found
    allowed_mems: frozenset[int] | None = None
    allowed_sources: tuple[str, ...] = ()            # where the restrictions came from

    @property
    def sockets(self) -> tuple[int, ...]:
        return tuple(sorted({c.package for c in self.cores}))

    def cores_of(self, package: int) -> tuple[Core, ...]:
        return tuple(c for c in self.cores if c.package == package)

    @cached_property
    def _node_by_cpu(self) -> dict[int, int]:
        if self.numa_problem:
            return {}
        return {cpu: n for n, cpus in self.numa.items() for cpu in cpus}

    def node_of(self, cpu: int) -> int | None:
        """The CPU's NUMA node; None when unknown or when the NUMA data contradicts itself."""
        return self._node_by_cpu.get(cpu)

    @cached_property
    def _l3_by_cpu(self) -> dict[int, tuple[int, ...]]:
        return {cpu: c.shared_cpus for c in self.caches if c.level == 3 and c.type == "Unified"
                for cpu in c.shared_cpus}

    def l3_of(self, cpu: int) -> tuple[int, ...] | None:
        """The CPUs sharing this CPU's L3 (its "L3 domain"); None without an L3."""
        return self._l3_by_cpu.get(cpu)

    @property
    def threads_per_core(self) -> int:
        return max((len(c.cpus) for c in self.cores), default=1)

    def kind_rank(self, name: str) -> int:
        names = [k.name for k in self.kinds]
        return names.index(name) if name in names else len(names)


@dataclass(frozen=True)
class ScopePlacement:
    scope: str
    cpus: tuple[int, ...]
    threads: int
    numa_nodes: tuple[int, ...]                      # memory binds here; () = do not bind
    socket: int | None
    core_kind: str | None = None                     # the one kind; "mixed" for socket/node on hybrids
    core_kinds: dict[str, int] = field(default_factory=dict, hash=False)   # kind -> physical cores
    numa_warning: str | None = None                  # why memory is bound to fewer nodes, or not at all

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: lists for tuples."""
        d = asdict(self)
        d["cpus"], d["numa_nodes"] = list(self.cpus), list(self.numa_nodes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScopePlacement:
        return cls(scope=d["scope"], cpus=tuple(d["cpus"]), threads=int(d["threads"]),
                   numa_nodes=tuple(d.get("numa_nodes") or ()), socket=d.get("socket"),
                   core_kind=d.get("core_kind"), core_kinds=dict(d.get("core_kinds") or {}),
                   numa_warning=d.get("numa_warning"))
