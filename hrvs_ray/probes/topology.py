"""Node topology from ``/sys`` + ``/proc``, and the mapping of a scope to a CPU set.

Pure: standard library only (no torch, no ray), so it runs before torch is imported
and on recorded snapshots (``read_topology(root=fixture)``).

Definitions (the answers follow from the files, nothing is guessed):

* online CPUs: ``cpu/online``; without it, ``cpuN/online`` (a CPU without that file,
  usually cpu0, cannot be offlined and counts as online).
* a physical core: the online CPUs of one ``thread_siblings_list`` (Linux's own notion of
  "hardware threads of one core"). On AMD Bulldozer (e.g. Opteron 6276) the kernel reports
  the two integer cores of a module as siblings because they share one FPU, so a module
  counts as one core here -- the right unit for an FP32-bound CNN. Without
  ``thread_siblings_list`` we fall back to the hex mask ``thread_siblings``, then to
  ``(physical_package_id, core_id)``.
* NUMA nodes: ``node/nodeN/cpulist`` intersected with the online CPUs. A CPU listed in
  no node directory (no NUMA support, or its node is offline) has no node.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace, field
from pathlib import Path

SCOPE_RE = re.compile(r"^(cores:(?P<n>[1-9][0-9]*)|socket|node)$")


class ScopeUnavailable(RuntimeError):
    """This node cannot provide the scope; ``reason`` says why (the cell is skipped, not failed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Core:
    package: int
    core_id: int
    cpus: tuple[int, ...]          # online hardware threads of this core, ascending

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
class Topology:
    root: str
    online: tuple[int, ...]
    cores: tuple[Core, ...]                          # sorted by (package, core_id, first cpu)
    numa: dict[int, tuple[int, ...]] = field(hash=False)   # node -> online CPUs
    caches: tuple[Cache, ...] = ()                   # one entry per distinct cache instance
    cpuinfo: dict[str, str] = field(default_factory=dict, hash=False)  # first processor's fields
    mem_total_bytes: int | None = None

    @property
    def sockets(self) -> tuple[int, ...]:
        return tuple(sorted({c.package for c in self.cores}))

    def cores_of(self, package: int) -> tuple[Core, ...]:
        return tuple(c for c in self.cores if c.package == package)

    def node_of(self, cpu: int) -> int | None:
        for n, cpus in self.numa.items():
            if cpu in cpus:
                return n
        return None

    @property
    def threads_per_core(self) -> int:
        return max((len(c.cpus) for c in self.cores), default=1)


@dataclass(frozen=True)
class ScopePlacement:
    scope: str
    cpus: tuple[int, ...]
    threads: int
    numa_nodes: tuple[int, ...]
    socket: int | None


def parse_cpulist(text: str) -> tuple[int, ...]:
    """``"0-3,8,10-11"`` -> (0, 1, 2, 3, 8, 10, 11); empty text -> ()."""
    out: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.update(range(int(lo), int(hi) + 1))
        else:
            out.add(int(part))
    return tuple(sorted(out))


def parse_cpumask(text: str) -> tuple[int, ...]:
    """Hex mask ``"00000000,00001001"`` (32-bit words, most significant first) -> CPU ids."""
    bits = int(text.strip().replace(",", "") or "0", 16)
    return tuple(i for i in range(bits.bit_length()) if bits >> i & 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _size_kib(text: str) -> int:
    """sysfs cache size ("32K", "11264K", "1M"; a bare number is bytes) in KiB."""
    m = re.match(r"\s*(\d+)\s*([KMG]?)", text)
    if not m:
        return 0
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[m.group(2)] // 1024


def _cpu_dirs(cpu_root: Path) -> dict[int, Path]:
    dirs = {}
    for p in cpu_root.glob("cpu[0-9]*"):
        if p.name[3:].isdigit():
            dirs[int(p.name[3:])] = p
    return dirs


def _online(cpu_root: Path, dirs: dict[int, Path]) -> tuple[int, ...]:
    text = _read(cpu_root / "online")
    if text is not None and text.strip():
        return parse_cpulist(text)
    return tuple(sorted(c for c, d in dirs.items() if _int(d / "online") != 0))


def _cpuinfo(root: Path) -> tuple[dict[str, str], dict[int, tuple[int, int]]]:
    """First processor's fields, and cpu -> (physical id, core id) for the fallback."""
    first: dict[str, str] = {}
    ids: dict[int, tuple[int, int]] = {}
    text = _read(root / "proc/cpuinfo") or ""
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()
        if "processor" not in fields or not fields["processor"].isdigit():
            continue
        if not first:
            first = fields
        try:
            ids[int(fields["processor"])] = (int(fields.get("physical id", 0)), int(fields.get("core id", 0)))
        except ValueError:
            pass
    return first, ids


def _meminfo_total(root: Path) -> int | None:
    for line in (_read(root / "proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _caches(dirs: dict[int, Path], online: tuple[int, ...]) -> tuple[Cache, ...]:
    seen: dict[tuple, Cache] = {}
    for cpu in online:
        for idx in sorted((dirs[cpu] / "cache").glob("index[0-9]*")):
            level, ctype, size = _int(idx / "level"), _read(idx / "type"), _read(idx / "size")
            if level is None or ctype is None or size is None:
                continue
            shared_text = _read(idx / "shared_cpu_list")
            if shared_text is not None:
                shared = parse_cpulist(shared_text)
            else:
                mask = _read(idx / "shared_cpu_map")
                shared = parse_cpumask(mask) if mask else (cpu,)
            shared = tuple(c for c in shared if c in online) or (cpu,)
            key = (level, ctype.strip(), shared)
            seen.setdefault(key, Cache(level, ctype.strip(), _size_kib(size), shared))
    return tuple(sorted(seen.values(), key=lambda c: (c.level, c.type, c.shared_cpus)))


def read_topology(root: str | Path = "/") -> Topology:
    """Read the node's topology under ``root`` (``/`` or a recorded snapshot)."""
    root = Path(root)
    cpu_root = root / "sys/devices/system/cpu"
    dirs = _cpu_dirs(cpu_root)
    cpuinfo, info_ids = _cpuinfo(root)
    online = _online(cpu_root, dirs) if dirs else tuple(sorted(info_ids))
    online_set = set(online)

    cores: dict[tuple[int, tuple[int, ...]], Core] = {}
    for cpu in online:
        topo = dirs.get(cpu, Path("/nonexistent")) / "topology"
        pkg, core_id = _int(topo / "physical_package_id"), _int(topo / "core_id")
        if pkg is None or core_id is None:
            pkg, core_id = info_ids.get(cpu, (0, cpu))
        sib_text = _read(topo / "thread_siblings_list")
        if sib_text is not None:
            sibs = parse_cpulist(sib_text)
        elif (mask := _read(topo / "thread_siblings")) is not None:
            sibs = parse_cpumask(mask)
        else:
            # Fallback: every online CPU with the same (package, core id) is a sibling.
            sibs = tuple(c for c in online if info_ids.get(c) == (pkg, core_id)) or (cpu,)
        sibs = tuple(c for c in sibs if c in online_set) or (cpu,)
        if (pkg, sibs) not in cores:
            cores[(pkg, sibs)] = Core(pkg, core_id, sibs)

    numa: dict[int, tuple[int, ...]] = {}
    for ndir in (root / "sys/devices/system/node").glob("node[0-9]*"):
        if not ndir.name[4:].isdigit() or not ndir.is_dir():
            continue
        text = _read(ndir / "cpulist")
        cpus = parse_cpulist(text) if text is not None else parse_cpumask(_read(ndir / "cpumap") or "")
        numa[int(ndir.name[4:])] = tuple(c for c in cpus if c in online_set)
    numa = dict(sorted(numa.items()))

    return Topology(
        root=str(root), online=online,
        cores=tuple(sorted(cores.values(), key=lambda c: (c.package, c.core_id, c.first))),
        numa=numa, caches=_caches(dirs, online) if dirs else (), cpuinfo=cpuinfo,
        mem_total_bytes=_meminfo_total(root))


def _placement(topo: Topology, scope: str, cores: list[Core], smt: bool, socket: int | None) -> ScopePlacement:
    cpus = tuple(sorted(c for core in cores for c in (core.cpus if smt else core.cpus[:1])))
    nodes = tuple(sorted({n for c in cpus if (n := topo.node_of(c)) is not None}))
    return ScopePlacement(scope=scope, cpus=cpus, threads=len(cpus), numa_nodes=nodes, socket=socket)


def _socket_summary(topo: Topology) -> str:
    return ", ".join(f"socket {s}: {len(topo.cores_of(s))} cores" for s in topo.sockets)


def resolve_scope(topo: Topology, scope: str, smt: bool = False,
                  allowed: "set[int] | frozenset[int] | None" = None) -> ScopePlacement:
    """Map ``cores:N`` | ``socket`` | ``node`` to CPUs of this node.

    ``allowed`` is the CPU set this process may use (``os.sched_getaffinity``: a cgroup
    cpuset, a SLURM allocation). ``cores:N`` picks its cores among those; ``socket`` and
    ``node`` mean the whole socket / node, so if any of their CPUs is not allowed the scope
    is unavailable (never silently shrunk).

    Deterministic: the lowest socket that can provide the scope; for ``cores:N`` the cores
    of one NUMA node when one node of that socket has enough (lowest node id first), else
    the socket's lowest core ids. ``smt`` adds every hardware thread of the chosen cores
    (``cores:N`` always uses one thread per core: the paper's "N cores").
    """
    m = SCOPE_RE.match(scope.strip())
    if not m:
        raise ValueError(f"unknown scope {scope!r}: expected 'cores:N', 'socket' or 'node'")
    if allowed is not None and not set(topo.online) <= set(allowed):
        if m.group("n"):
            return resolve_scope(restrict(topo, allowed), scope, smt)
        p = resolve_scope(topo, scope, smt)
        missing = sorted(set(p.cpus) - set(allowed))
        if missing:
            raise ScopeUnavailable(f"{scope} needs CPUs {format_cpulist(p.cpus)}; this process may use only "
                                   f"{format_cpulist(sorted(allowed))} (cgroup/SLURM allocation): "
                                   f"{format_cpulist(missing)} not allowed")
        return p
    if not topo.cores:
        raise ScopeUnavailable(f"{scope} needs CPU topology; none readable under {topo.root}")
    if m.group("n"):
        n = int(m.group("n"))
        for sock in topo.sockets:
            cores = list(topo.cores_of(sock))
            if len(cores) < n:
                continue
            for node_cpus in topo.numa.values():
                in_node = [c for c in cores if c.first in node_cpus]
                if len(in_node) >= n:
                    return _placement(topo, scope, in_node[:n], False, sock)
            return _placement(topo, scope, cores[:n], False, sock)
        most = max(len(topo.cores_of(s)) for s in topo.sockets)
        raise ScopeUnavailable(f"{scope} needs {n} physical cores in one socket; this node has at most "
                               f"{most} ({_socket_summary(topo)})")
    if scope == "socket":
        sock = topo.sockets[0]
        return _placement(topo, scope, list(topo.cores_of(sock)), smt, sock)
    socket = topo.sockets[0] if len(topo.sockets) == 1 else None
    return _placement(topo, scope, list(topo.cores), smt, socket)


def restrict(topo: Topology, allowed: "set[int] | frozenset[int]") -> Topology:
    """The topology as seen through an allowed CPU set: only allowed CPUs, and only cores
    with at least one allowed hardware thread."""
    cores = tuple(Core(c.package, c.core_id, tuple(x for x in c.cpus if x in allowed))
                  for c in topo.cores if any(x in allowed for x in c.cpus))
    return replace(topo, online=tuple(c for c in topo.online if c in allowed), cores=cores,
                   numa={n: tuple(c for c in cpus if c in allowed) for n, cpus in topo.numa.items()})


def format_cpulist(cpus: "tuple[int, ...] | list[int]") -> str:
    """0,1,2,3,8 -> '0-3,8' (the kernel's cpulist format)."""
    out, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)
