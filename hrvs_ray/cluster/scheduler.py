"""Which cell runs next on which node, and what happens after a failure. Pure: no ray.

One cell at a time per node; cells of a cluster go to whichever of its nodes is idle first,
so k nodes finish a cluster's cells in about 1/k of the time. A node prefers cells its
current host can run (same placement, kernel-cache setting, process kind), so it switches
hosts, and starts a zygote, as rarely as the queue allows. A cell whose process died is
retried, up to ``retries`` times, on another node of its cluster it has not tried yet, or on
the same node where no other is left (a one-node cluster retries too).

A data-parallel cell (``N*SCOPE``) needs several nodes at once (``N*node``: N of them) or one
node that holds all its ranks (``N*cores:k``, ``N*socket``): ``next_group`` gives it the
idle nodes it needs, untried ones first; ``next_for`` never hands it to a single node.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..plan.cells import CellSpec
from ..scopes import parse_scope, ranks_of
from .nodes import NodeView


@dataclass
class Pending:
    cell: CellSpec
    feasible: set[str]                 # node ids that can run it (scope + memory)
    tried: list[str] = field(default_factory=list)
    peak_bytes: int = 0                # the plan's memory estimate for its largest step
    tried_nodes: set[str] = field(default_factory=set)   # data-parallel cells: every node an attempt used


def nodes_needed(scope: str) -> int:
    """How many nodes a cell of ``scope`` runs on at once: ``N*node`` one per rank; every
    other scope, data-parallel ones included, one (all its ranks on one node)."""
    s = parse_scope(scope)
    return s.ranks if s.kind == "node" else 1


class Scheduler:
    def __init__(self, pending: list[Pending], retries: int) -> None:
        self.queue: deque[Pending] = deque(pending)
        self.retries = retries
        self.dead: set[str] = set()

    def __len__(self) -> int:
        return len(self.queue)

    def may_run(self, p: Pending, node_id: str) -> bool:
        """Untried on this node, or tried here and no untried live node of its cluster is left."""
        if node_id not in p.feasible:
            return False
        return node_id not in p.tried or not (p.feasible - set(p.tried) - self.dead)

    def next_for(self, node_id: str, prefer: Callable[[CellSpec], bool] | None = None) -> Pending | None:
        """The first queued single-rank cell this node may run (untried here, unless it is the
        only option); among those, the first that ``prefer`` likes (the node's current host
        can run it)."""
        if node_id in self.dead:
            return None
        runnable = [p for p in self.queue if ranks_of(p.cell.scope) == 1 and self.may_run(p, node_id)]
        if not runnable:
            return None
        p = next((q for q in runnable if prefer(q.cell)), runnable[0]) if prefer else runnable[0]
        self.queue.remove(p)
        p.tried.append(node_id)
        return p

    def next_group(self, idle: set[str]) -> tuple[Pending, list[str]] | None:
        """The first queued data-parallel cell whose nodes are all idle now, with those nodes
        (untried ones first, then by id), unless a single-rank cell queued before it can run on
        an idle node (cells run in queue order). Its attempt is recorded once, under its first
        node."""
        for p in self.queue:
            if ranks_of(p.cell.scope) == 1:
                if any(self.may_run(p, n) for n in idle):
                    return None      # queue order: an earlier single-rank cell takes an idle node first
                continue
            free = sorted(p.feasible & idle - self.dead, key=lambda n: (n in p.tried_nodes, n))
            need = nodes_needed(p.cell.scope)
            if len(free) >= need:
                self.queue.remove(p)
                nodes = free[:need]
                p.tried.append(nodes[0])
                p.tried_nodes.update(nodes)
                return p, nodes
        return None

    def after_crash(self, p: Pending) -> bool:
        """The cell's process died. Requeue it if a retry is left and a live node of its
        cluster can take it (an untried one first: ``next_for``); return True if requeued."""
        retries_used = len(p.tried) - 1
        if retries_used < self.retries and len(p.feasible - self.dead) >= nodes_needed(p.cell.scope):
            self.queue.appendleft(p)
            return True
        return False

    def untried_left(self, p: Pending) -> bool:
        """Whether a live node of the cell's cluster has not tried it yet."""
        return bool(p.feasible - set(p.tried) - p.tried_nodes - self.dead)

    def node_lost(self, node_id: str) -> list[Pending]:
        """Forget a dead node; return queued cells no live node can run any more."""
        self.dead.add(node_id)
        stranded = [p for p in self.queue if len(p.feasible - self.dead) < nodes_needed(p.cell.scope)]
        for p in stranded:
            self.queue.remove(p)
        return stranded


Peak = Callable[[NodeView], int]   # a cell's planned peak bytes on one node (per-node calibration)


def feasibility(cell: CellSpec, nodes: Sequence[NodeView], peak: int | Peak,
                headroom: float, resident: int = 0) -> tuple[set[str], str]:
    """Node ids of the cell's cluster that can run it, or the reason none can: the scope must
    map onto the node, and on CPUs the planned peak plus ``resident`` (what the cell's host
    and zygote keep resident beside it) must fit in ``headroom`` of its memory."""
    reasons = []
    ok = set()
    for n in nodes:
        if n.cluster != cell.cluster:
            continue
        p = n.placements.get(cell.scope)
        if isinstance(p, str):
            reasons.append(f"{n.name}: {p}")
            continue
        if isinstance(p, list) and nodes_needed(cell.scope) == 1 and len(p) < ranks_of(cell.scope):
            reasons.append(f"{n.name}: {cell.scope} needs {ranks_of(cell.scope)} ranks on one node; "
                           f"it holds {len(p)} (disjoint CPU sets of {p[0].scope})")
            continue
        if cell.model.device == "cuda" and n.gpus < 1:
            reasons.append(f"{n.name}: model.device is cuda and Ray reports no GPU on this node")
            continue
        limit = int(n.memory_bytes * headroom)
        need = peak(n) if callable(peak) else peak
        if cell.model.device == "cpu" and n.memory_bytes and need + resident > limit:
            beside = f" plus {resident / 1e9:.1f} GB for its zygote" if resident else ""
            reasons.append(f"{n.name}: estimated peak memory {need / 1e9:.1f} GB{beside} exceeds "
                           f"{headroom:.0%} of the node's {n.memory_bytes / 1e9:.1f} GB")
            continue
        ok.add(n.ray_node_id)
    if 1 < nodes_needed(cell.scope) > len(ok):
        have = f"{len(ok)} node(s) of this cluster can hold a rank" + (f" ({'; '.join(reasons)})" if reasons else "")
        return set(), f"{cell.scope} needs {nodes_needed(cell.scope)} nodes, one rank each; {have}"
    return ok, "; ".join(reasons) or "no node of this cluster in the Ray cluster"


@dataclass
class Triage:
    pending: list[Pending] = field(default_factory=list)
    skipped: list[tuple[CellSpec, str]] = field(default_factory=list)
    already_done: int = 0


def triage(cells: Sequence[CellSpec], done: dict[str, str], nodes: Sequence[NodeView],
           peak_of: Callable[[CellSpec], int | Peak], headroom: float, resident: int = 0) -> Triage:
    """Split planned cells into finished (left alone), runnable and skipped-with-reason."""
    out = Triage()
    for cell in cells:
        if done.get(cell.cell_id) == "ok":
            out.already_done += 1
            continue
        peak = peak_of(cell)
        feasible, why = feasibility(cell, nodes, peak, headroom, resident)
        if feasible:
            worst = max(peak(n) for n in nodes if n.ray_node_id in feasible) if callable(peak) else peak
            out.pending.append(Pending(cell, feasible, peak_bytes=worst))
        else:
            out.skipped.append((cell, why))
    return out
