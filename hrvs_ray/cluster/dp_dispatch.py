"""The driver's side of data-parallel cells (``N*SCOPE``): choose their nodes, free them,
start the cell on Ray Train (``ray_train``), collect it, react to a rank or node that died.

The sweep's ``CellLoop`` (``cell_loop``) calls this module from its loop; a single-rank cell
never comes here and runs exactly as before. A data-parallel cell starts only once every node
it needs is idle (``Scheduler.next_group``); each of those nodes' cell host is closed first:
a host books its node's CPUs for its lifetime, and the ranks' placement group needs them.
Nodes a data-parallel cell holds are busy until its driving task has returned, which is after
Ray Train has ended every rank.

Ray's and the driver's own processes are not pinned away from the ranks' CPUs: see
``ray_train``'s module docstring and docs/data-parallel.md.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..config import Sweep
from ..store import ResultStore
from . import ray_io, ray_train
from .failures import Failure, FailureKind
from .nodes import NodeView
from .records import CellOutcome
from .scheduler import Pending, Scheduler

SCRATCH = ".scratch"      # inside the results folder: Ray Train's storage_path, removed per cell


class Loop(Protocol):
    """What this module uses of the driver's ``CellLoop`` (named here, not imported: the
    cell loop imports this module)."""
    sweep: Sweep
    store: ResultStore
    sched: Scheduler
    by_id: dict[str, NodeView]
    idle: set[str]
    hosts: dict[str, Any]

    def finish(self, p: Pending, node: NodeView | None, outcome: CellOutcome) -> None: ...
    def crashed(self, p: Pending, node: NodeView | None, failure: Failure) -> None: ...
    def lose_node(self, nid: str) -> None: ...


@dataclass
class GroupRunning:
    pending: Pending
    nodes: list[NodeView]
    started: float
    stopping: float | None = None


class DataParallelCells:
    """The data-parallel cells of one ``CellLoop``: those in flight, by their driving task's ref."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.inflight: dict[Any, GroupRunning] = {}
        self.scratch = Path(loop.store.root) / SCRATCH

    def launch(self) -> None:
        """Start every queued data-parallel cell whose nodes are idle now."""
        loop = self.loop
        while (got := loop.sched.next_group(set(loop.idle))) is not None:
            p, nids = got
            closing = [loop.hosts.pop(nid).handle for nid in nids if nid in loop.hosts]
            if closing:          # their zygotes end, and their CPUs are freed, before the ranks start
                ray_io.close_hosts(closing)
            nodes = [loop.by_id[nid] for nid in nids]
            rank_nodes = [ray_train.RankNode(n.ray_node_id, n.name, n.cpus, tuple(n.placements[p.cell.scope]))
                          for n in nodes]
            ref = ray_train.start_cell(p.cell, loop.sweep.dataset, rank_nodes, loop.sweep.execution.exclusive,
                                       self.scratch)
            self.inflight[ref] = GroupRunning(p, nodes, time.monotonic())
            loop.idle.difference_update(nids)

    def collect(self, ref: Any) -> None:
        """A driving task returned: write the cell, or retry / fail it."""
        loop = self.loop
        r = self.inflight.pop(ref)
        try:
            outcome: CellOutcome = ray_io.fetch(ref)
        except Exception as e:  # the driving task itself died (cancelled for a timeout, its node lost)
            outcome = CellOutcome.not_run("failed", str(ray_io.classify(e)))
        lost = [n for n in r.nodes if not ray_io.node_alive(n.ray_node_id)]
        for n in lost:
            loop.lose_node(n.ray_node_id)   # before the retry, so it cannot land there again
        if outcome.status == "ok":
            loop.finish(r.pending, r.nodes[0], outcome)
        else:
            failure = _failure(outcome.error or "", r, lost, loop.sweep.execution.cell_timeout_s)
            if failure.kind is FailureKind.CELL_ERROR:
                loop.finish(r.pending, r.nodes[0], CellOutcome.not_run("failed", str(failure)))
            else:
                loop.crashed(r.pending, r.nodes[0], failure)
        for n in r.nodes:
            if n.ray_node_id not in loop.sched.dead:
                loop.idle.add(n.ray_node_id)

    def check_timeouts(self) -> None:
        limit = self.loop.sweep.execution.cell_timeout_s
        now = time.monotonic()
        for ref, r in self.inflight.items():
            if r.stopping is None and now - r.started > limit:
                r.stopping = now
                ray_train.cancel(ref)    # its ranks end with the trainer; the ref then fails

    def close(self) -> None:
        """End every cell still running (the sweep is stopping)."""
        for ref in list(self.inflight):
            ray_train.cancel(ref)
        try:       # each cell removed its own storage folder; the scratch folder goes once empty
            self.scratch.rmdir()
        except OSError:
            pass


def _failure(error: str, r: GroupRunning, lost: list[NodeView], limit: float) -> Failure:
    """A failed outcome's words as a Failure the loop acts on (``ray_train.rank_failure``
    wrote them: they start with the kind's words). A node that left while the cell ran is the
    cause, unless the words already say so (the driving task saw the node go)."""
    if r.stopping is not None:
        return Failure(FailureKind.TIMEOUT, f"cell ran over {limit:.0f} s")
    said = next((Failure(kind, error[len(f"{kind.value}: "):]) for kind in FailureKind
                 if error.startswith(f"{kind.value}: ")), Failure(FailureKind.DRIVER_ERROR, error))
    if lost and said.kind is not FailureKind.NODE_LOST:
        return said.on_lost_node(", ".join(n.name for n in lost))
    return said
