"""The scope rules: which CPUs and memory nodes ``cores:N``, ``socket`` and ``node`` mean on a node.

* ``cores:N`` = N physical cores of **one core kind**, one hardware thread each, all in one
  socket. The fastest kind that can provide N is used. Among that kind's cores the tightest
  group that holds N wins, in this order: one L3 domain and one NUMA node; one L3 domain;
  one die and one NUMA node; one die; one NUMA node; the socket; inside it, the first N cores
  in compact order (cores sharing an L2 next to each other, as hwloc orders them). Where no socket has N
  cores of one kind, the scope is unavailable with the reason -- never shrunk, never mixed.
* ``socket`` = every core of one socket; ``node`` = every core of the node. Both may hold
  several kinds: the placement counts them (``core_kinds``). With ``smt`` every hardware
  thread of those cores is used.
* Allowed CPUs (cgroup cpuset, ``sched_getaffinity``, SLURM) limit the choice: ``cores:N`` picks
  among allowed cores; ``socket`` takes the first socket that is wholly allowed; ``node``
  needs every core. Ties go to groups whose memory nodes are all allowed, then to the group
  holding the lowest CPU number (as hwloc orders them; package ids need not follow CPU order).
* Memory binds to the NUMA nodes of the chosen CPUs that the job may use (cpuset mems). When
  the NUMA data contradicts itself, or none of those nodes is allowed, nothing is bound and
  ``numa_warning`` says why.

Data-parallel scopes ``R*SCOPE`` (``rank_placements``, ``place_ranks``): each rank gets what a
single-rank ``SCOPE`` cell would get, by the rules above, and ranks on one node never share a
CPU nor a physical core (SMT siblings included). Rank by rank, greedily: rank r gets the
placement a single ``SCOPE`` cell would get on the CPUs that ranks 0..r-1 left (their cores
removed whole), so rank 0 is exactly the single-rank cell's placement.

* ``R*cores:k``: the R ranks on one node (the ranks of such a cell share a node by design:
  ``cores:k`` is a part of one socket); a node that cannot hold R disjoint sets cannot place
  the scope, with the reason.
* ``R*socket``: R sockets, on one node when it has R wholly allowed sockets, else across nodes.
* ``R*node``: one whole node per rank, on R distinct nodes; one node alone cannot place it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace

from ..scopes import Scope, parse_scope
from .sysfs import format_cpulist
from .topology_types import Core, ScopePlacement, ScopeUnavailable, Topology

_Key = Callable[[Topology, Core], Hashable]
LEVELS: tuple[tuple[str, _Key], ...] = (
    ("one L3 domain and one NUMA node", lambda t, c: (c.package, t.l3_of(c.first), t.node_of(c.first))),
    ("one L3 domain", lambda t, c: (c.package, t.l3_of(c.first))),
    ("one die and one NUMA node", lambda t, c: (c.package, c.die, t.node_of(c.first))),
    ("one die", lambda t, c: (c.package, c.die)),
    ("one NUMA node", lambda t, c: (c.package, t.node_of(c.first))),
    ("one socket", lambda t, c: (c.package,)),
)


def restrict(topo: Topology, allowed: set[int] | frozenset[int]) -> Topology:
    """The topology as seen through an allowed CPU set: only allowed CPUs, and only cores
    with at least one allowed hardware thread."""
    cores = tuple(replace(c, cpus=tuple(x for x in c.cpus if x in allowed))
                  for c in topo.cores if any(x in allowed for x in c.cpus))
    return replace(topo, online=tuple(c for c in topo.online if c in allowed), cores=cores,
                   numa={n: tuple(c for c in cpus if c in allowed) for n, cpus in topo.numa.items()})


def _allowed(topo: Topology, allowed: set[int] | frozenset[int] | None) -> frozenset[int] | None:
    sets = [s for s in (topo.allowed_cpus, allowed) if s is not None]
    if not sets:
        return None
    out = frozenset.intersection(*map(frozenset, sets))
    return None if out >= set(topo.online) else out


def _allowed_text(topo: Topology, allow: frozenset[int]) -> str:
    src = "; ".join(topo.allowed_sources) or "cgroup/SLURM allocation"
    return f"this process may use only {format_cpulist(allow) or 'no online CPU'} ({src})"


def _mem_ok(topo: Topology, cores: list[Core]) -> bool:
    if topo.allowed_mems is None:
        return True
    return {n for c in cores if (n := topo.node_of(c.first)) is not None} <= topo.allowed_mems


def _kinds_text(cores: tuple[Core, ...] | list[Core], topo: Topology) -> str:
    if len(topo.kinds) <= 1:
        return f"{len(cores)} core" + ("s" if len(cores) != 1 else "")
    counts = Counter(c.kind for c in cores)
    return " + ".join(f"{counts[k]} {k}" for k in sorted(counts, key=topo.kind_rank)) + \
        (" cores" if len(cores) != 1 else " core")


def _pick_cores(topo: Topology, view: Topology, n: int, scope: str, allow: frozenset[int] | None) -> list[Core]:
    for kind in sorted({c.kind for c in view.cores}, key=topo.kind_rank):
        pool = [c for c in view.cores if c.kind == kind]
        for _label, key in LEVELS:
            groups: dict[Hashable, list[Core]] = {}
            for c in pool:
                groups.setdefault(key(topo, c), []).append(c)
            fits = [g for g in groups.values() if len(g) >= n]
            if fits:
                return min(fits, key=lambda g: (not _mem_ok(topo, g[:n]), g[0].first))[:n]
    per_socket = ", ".join(f"socket {s}: {_kinds_text(view.cores_of(s), topo)}" for s in view.sockets)
    most = max(Counter((c.package, c.kind) for c in view.cores).values())
    kind = " of one kind" if len(topo.kinds) > 1 else ""
    where = f"; {_allowed_text(topo, allow)}" if allow is not None else ""
    raise ScopeUnavailable(f"{scope} needs {n} physical cores{kind} in one socket; this node has at most "
                           f"{most} ({per_socket}){where}")


def _missing(core: Core, allow: frozenset[int] | None, smt: bool) -> tuple[int, ...]:
    """The CPUs of ``core`` that keep it from being used whole (all threads with smt, else one)."""
    if allow is None:
        return ()
    ok = [x for x in core.cpus if x in allow]
    if smt:
        return tuple(x for x in core.cpus if x not in allow)
    return () if ok else core.cpus


def _pick_socket(topo: Topology, smt: bool, allow: frozenset[int] | None) -> list[Core]:
    problems, whole = [], []
    for s in topo.sockets:
        missing = [x for c in topo.cores_of(s) for x in _missing(c, allow, smt)]
        if missing:
            problems.append(f"socket {s}: {format_cpulist(missing)} not allowed")
        else:
            whole.append(list(topo.cores_of(s)))
    if not whole:
        raise ScopeUnavailable(f"socket needs every core of one socket; {_allowed_text(topo, allow or frozenset())}: "
                               f"no socket is wholly allowed ({'; '.join(problems)})")
    return min(whole, key=lambda g: (not _mem_ok(topo, g), g[0].first))


def _pick_node(topo: Topology, smt: bool, allow: frozenset[int] | None) -> list[Core]:
    missing = [x for c in topo.cores for x in _missing(c, allow, smt)]
    if missing:
        raise ScopeUnavailable(f"node needs every core of the node; {_allowed_text(topo, allow or frozenset())}: "
                               f"{format_cpulist(missing)} not allowed")
    return list(topo.cores)


def _memory(topo: Topology, cpus: tuple[int, ...]) -> tuple[tuple[int, ...], str | None]:
    """(nodes to bind, warning) for these CPUs."""
    if topo.numa_problem:
        return (), topo.numa_problem
    nodes = {n for c in cpus if (n := topo.node_of(c)) is not None}
    if topo.allowed_mems is None or nodes <= topo.allowed_mems:
        return tuple(sorted(nodes)), None
    ok = tuple(sorted(nodes & topo.allowed_mems))
    bad = format_cpulist(nodes - topo.allowed_mems)
    return ok, (f"NUMA node(s) {bad} of these CPUs are outside this job's memory nodes "
                f"({format_cpulist(topo.allowed_mems)}): " + (f"memory bound to {format_cpulist(ok)} only"
                                                              if ok else "memory is not bound"))


def _placement(topo: Topology, scope: str, cores: list[Core], smt: bool,
               allow: frozenset[int] | None) -> ScopePlacement:
    threads = [tuple(x for x in c.cpus if allow is None or x in allow) for c in cores]
    cpus = tuple(sorted(x for t in threads for x in (t if smt else t[:1])))
    nodes, warning = _memory(topo, cpus)
    counts = Counter(c.kind for c in cores)
    kinds = {k: counts[k] for k in sorted(counts, key=topo.kind_rank)}
    packages = {c.package for c in cores}
    return ScopePlacement(scope=scope, cpus=cpus, threads=len(cpus), numa_nodes=nodes,
                          socket=packages.pop() if len(packages) == 1 else None,
                          core_kind=next(iter(kinds)) if len(kinds) == 1 else "mixed",
                          core_kinds=kinds, numa_warning=warning)


def resolve_scope(topo: Topology, scope: str, smt: bool = False,
                  allowed: set[int] | frozenset[int] | None = None) -> ScopePlacement:
    """Map ``cores:N`` | ``socket`` | ``node`` to CPUs and memory nodes of this node (rules above).

    ``allowed`` further limits the CPUs (the driver passes the Ray worker's affinity); the
    topology's own ``allowed_cpus`` always applies. ``smt`` uses every hardware thread of a
    socket's or node's cores; ``cores:N`` is always one thread per core (the paper's "N cores").
    Raises ValueError for a malformed scope, :class:`ScopeUnavailable` when this node cannot
    provide it. A data-parallel scope ``R*SCOPE`` placed on this node alone: the union of its
    R ranks' CPUs (``rank_placements``), unavailable when this node cannot hold all R ranks
    (``R*node`` never can: it needs R nodes).
    """
    s = parse_scope(scope)
    if s.ranks > 1:
        return _union(s, rank_placements(topo, s.text, smt, allowed), topo)
    scope = s.text
    allow = _allowed(topo, allowed)
    view = restrict(topo, allow) if allow is not None else topo
    if not view.cores:
        raise ScopeUnavailable(f"{scope} needs CPU topology; no usable CPU under {topo.root}"
                               + (f" ({_allowed_text(topo, allow)})" if allow is not None else ""))
    if s.kind == "cores":
        cores = _pick_cores(topo, view, int(s.cores or 0), scope, allow)
        return _placement(topo, scope, cores, False, allow)
    cores = _pick_socket(topo, smt, allow) if s.kind == "socket" else _pick_node(topo, smt, allow)
    return _placement(topo, scope, cores, smt, allow)


@dataclass(frozen=True)
class RankPlacement:
    """Where one rank of a data-parallel cell runs: its node (the name ``place_ranks`` was
    given) and its placement there (``placement.scope`` is the rank scope, e.g. ``cores:1``)."""
    rank: int
    node: str
    placement: ScopePlacement

    def to_dict(self) -> dict:
        return {"rank": self.rank, "node": self.node, **self.placement.to_dict()}


def _used_cpus(topo: Topology, placements: list[ScopePlacement]) -> set[int]:
    """Every hardware thread of every core the placements touch (so no rank shares a core)."""
    taken = {x for p in placements for x in p.cpus}
    return {x for c in topo.cores if taken & set(c.cpus) for x in c.cpus}


def rank_placements(topo: Topology, scope: str, smt: bool = False,
                    allowed: set[int] | frozenset[int] | None = None) -> list[ScopePlacement]:
    """The ranks of data-parallel ``scope`` (``R*SCOPE``; a single-rank scope is one rank) that
    this node holds, rank by rank (module docstring): ``R*cores:k`` exactly R disjoint sets or
    :class:`ScopeUnavailable`; ``R*socket`` up to R sockets, at least one; ``R*node`` the whole
    node, once. Each placement's ``scope`` is the rank scope."""
    s = parse_scope(scope)
    one = s.rank.text
    base = set(topo.online) if allowed is None else set(allowed)
    want = s.ranks if s.kind != "node" else 1
    out: list[ScopePlacement] = []
    while len(out) < want:
        free = base - _used_cpus(topo, out)
        try:
            out.append(resolve_scope(topo, one, smt, free if out or allowed is not None else None))
        except ScopeUnavailable as e:
            if not out:
                raise ScopeUnavailable(f"{s.text}: no rank fits on this node ({one}: {e.reason})") from e
            if s.kind == "cores":
                raise ScopeUnavailable(
                    f"{s.text} needs {s.ranks} disjoint sets of {one} on one node (ranks never share a core); "
                    f"this node holds {len(out)} (CPUs {', '.join(format_cpulist(p.cpus) for p in out)}); "
                    f"rank {len(out)}: {e.reason}") from e
            break                          # R*socket: the other sockets come from other nodes
    return out


def _union(s: Scope, ranks: list[ScopePlacement], topo: Topology) -> ScopePlacement:
    """The whole of ``s`` on one node: every rank's CPUs (the cell holds them all)."""
    if len(ranks) < s.ranks:
        what = "nodes, one whole node per rank" if s.kind == "node" else "sockets, one per rank"
        raise ScopeUnavailable(f"{s.text} needs {s.ranks} {what}; this node holds {len(ranks)} "
                               f"(the others must come from other nodes)")
    cpus = tuple(sorted(x for p in ranks for x in p.cpus))
    counts: Counter[str] = Counter()
    for p in ranks:
        counts.update(p.core_kinds)
    kinds = {k: counts[k] for k in sorted(counts, key=topo.kind_rank)}
    sockets = {p.socket for p in ranks}
    warnings = list(dict.fromkeys(p.numa_warning for p in ranks if p.numa_warning))
    return ScopePlacement(scope=s.text, cpus=cpus, threads=sum(p.threads for p in ranks),
                          numa_nodes=tuple(sorted({n for p in ranks for n in p.numa_nodes})),
                          socket=sockets.pop() if len(sockets) == 1 else None,
                          core_kind=next(iter(kinds)) if len(kinds) == 1 else "mixed", core_kinds=kinds,
                          numa_warning="; ".join(warnings) or None)


def place_ranks(nodes: Mapping[str, Topology], scope: str, smt: bool = False,
                allowed: Mapping[str, set[int] | frozenset[int] | None] | None = None) -> list[RankPlacement]:
    """Every rank of ``scope`` on the cluster ``nodes`` (name -> topology, in the order to fill
    them): ``R*cores:k`` on the first node that holds all R ranks; ``R*socket`` on the first
    node with R sockets, else sockets node by node in order; ``R*node`` on the first R nodes.
    ``allowed`` limits each node's CPUs (as in ``resolve_scope``). Raises
    :class:`ScopeUnavailable` naming why the nodes cannot hold every rank."""
    s = parse_scope(scope)
    allow = allowed or {}
    held: dict[str, list[ScopePlacement]] = {}
    reasons: dict[str, str] = {}
    for name, topo in nodes.items():
        try:
            held[name] = rank_placements(topo, s.text, smt, allow.get(name))
        except ScopeUnavailable as e:
            reasons[name] = e.reason
    whole = [n for n, ps in held.items() if len(ps) >= s.ranks]
    if whole and s.kind != "node":
        return [RankPlacement(r, whole[0], p) for r, p in enumerate(held[whole[0]][:s.ranks])]
    out = [RankPlacement(0, n, p) for n, ps in held.items() for p in ps]
    if s.kind != "cores" and len(out) >= s.ranks:
        return [RankPlacement(r, rp.node, rp.placement) for r, rp in enumerate(out[:s.ranks])]
    unit = {"cores": f"{s.ranks} disjoint sets of {s.rank.text} on one node",
            "socket": f"{s.ranks} sockets", "node": f"{s.ranks} nodes, one whole node per rank"}[s.kind]
    found = "; ".join([f"{n}: holds {len(ps)}" for n, ps in held.items()] +
                      [f"{n}: {r}" for n, r in reasons.items()])
    raise ScopeUnavailable(f"{s.text} needs {unit}; {len(nodes)} node{'s' if len(nodes) != 1 else ''} here "
                           f"({found or 'none'})")
