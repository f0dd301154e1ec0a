"""Which cell runs next on which node, and what happens after a failure. Pure: no ray.

One cell at a time per node; cells of a cluster go to whichever of its nodes is idle first,
so k nodes finish a cluster's cells in about 1/k of the time. A cell whose process died is
retried on another node of its cluster that it has not tried yet, up to ``retries`` times.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..plan import CellSpec


@dataclass
class Pending:
    cell: CellSpec
    feasible: set[str]                 # node ids that can run it (scope + memory)
    tried: list[str] = field(default_factory=list)
    peak_bytes: int = 0                # the plan's memory estimate for its largest step


class Scheduler:
    def __init__(self, pending: list[Pending], retries: int) -> None:
        self.queue: deque[Pending] = deque(pending)
        self.retries = retries
        self.dead: set[str] = set()

    def __len__(self) -> int:
        return len(self.queue)

    def next_for(self, node_id: str) -> Pending | None:
        """The first queued cell this node may run (untried here, unless it is the only option)."""
        for p in list(self.queue):
            if node_id in p.feasible and node_id not in p.tried:
                self.queue.remove(p)
                p.tried.append(node_id)
                return p
        return None

    def after_crash(self, p: Pending) -> bool:
        """The cell's process died. Requeue it if a retry is left and an untried live node of
        its cluster can take it; return True if requeued."""
        retries_used = len(p.tried) - 1
        others = p.feasible - set(p.tried) - self.dead
        if retries_used < self.retries and others:
            self.queue.appendleft(p)
            return True
        return False

    def node_lost(self, node_id: str) -> list[Pending]:
        """Forget a dead node; return queued cells no live node can run any more."""
        self.dead.add(node_id)
        stranded = [p for p in self.queue if not (p.feasible - self.dead - set(p.tried))]
        for p in stranded:
            self.queue.remove(p)
        return stranded
