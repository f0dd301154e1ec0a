"""The sweep's cell loop: dispatch each cell to its node's cell host (a Ray actor pinned to
the node, owning the node's zygote), collect it, write every finished cell to disk at once,
and survive dead cell processes, dead hosts and lost nodes.

``driver`` plans the cells and runs this loop; data-parallel cells go to ``dp_dispatch``.
Ray I/O lives in ``ray_io``, pure decisions (which cell next, retries) in ``scheduler``, the
records in ``records``. Every wait has a timeout: a node that vanishes never hangs the loop.
"""
from __future__ import annotations

import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..config import Sweep
from ..metrics import cell_s_per_mp
from ..plan.cells import CellSpec
from ..store import ResultStore
from . import ray_io
from .dp_dispatch import DataParallelCells
from .failures import Failure, FailureKind
from .nodes import NodeView
from .records import CellOutcome, CellSummary, NodeRef, cell_row, where
from .scheduler import Pending, Scheduler
from .zygote_client import CellProcessDied, host_key

POLL_S = 2.0
NODE_CHECK_S = 5.0
STOP_GRACE_S = 60.0     # a host asked to stop its cell that has not answered by then is killed


class Progress(Protocol):
    """Where the driver reports progress (the CLI's progress bar, or plain lines)."""
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def write(self, line: str) -> None: ...
    def close(self) -> None: ...


@dataclass
class SweepSummary:
    total: int = 0
    already_done: int = 0
    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    unwritten: int = 0          # cells that ran but whose result could not be written


@dataclass
class Running:
    pending: Pending
    node: NodeView
    started: float
    host: Host
    stopping: float | None = None     # when the driver asked its host to stop it (a timeout)


@dataclass
class Host:
    """A node's cell host (a Ray actor owning one zygote) and what it was started for."""
    key: tuple
    handle: Any


def _ref(node: NodeView | None) -> NodeRef | None:
    return NodeRef(node.name, node.ray_node_id, node.hostname) if node else None


class CellLoop:
    """Dispatch cells to idle nodes (one at a time per node), collect them, react to
    crashes, timeouts and lost nodes. Each finished cell is written before the next wait.

    Each node has at most one host at a time: a cell that needs another placement, kernel
    cache or process kind closes the node's host, and with it its zygote, before a new one
    starts; no idle zygote stays resident beside a timed cell. A node is idle again only
    once its last cell's ``run`` has returned, which its host answers after the cell's
    process is gone (a stopped cell included)."""

    def __init__(self, sweep: Sweep, store: ResultStore, nodes: list[NodeView], sched: Scheduler,
                 summary: SweepSummary, bar: Progress) -> None:
        self.sweep, self.store, self.sched, self.summary, self.bar = sweep, store, sched, summary, bar
        self.by_id = {n.ray_node_id: n for n in nodes}
        self.idle = set(self.by_id)
        self.inflight: dict[Any, Running] = {}
        self.hosts: dict[str, Host] = {}
        self.last_node_check = 0.0
        self.dp = DataParallelCells(self)     # cells of N*SCOPE scopes: dp_dispatch

    def run(self) -> None:
        try:
            while len(self.sched) or self.inflight or self.dp.inflight:
                self.dp.launch()
                self.launch()
                if not self.inflight and not self.dp.inflight:
                    for p in list(self.sched.queue):   # queued, but no live node may take them
                        self.sched.queue.remove(p)
                        self.crashed(p, None, Failure(FailureKind.NODE_LOST, "no live node of its cluster is left"))
                    break
                self.collect()
                self.check_timeouts()
                self.check_nodes()
        finally:
            self.dp.close()
            # every host closes its zygote and waits for it; a running cell dies with its host
            ray_io.close_hosts([h.handle for nid, h in sorted(self.hosts.items()) if nid not in self.sched.dead])
            for nid in self.sched.dead & set(self.hosts):
                ray_io.kill_host(self.hosts[nid].handle)
            self.hosts.clear()
            self.bar.close()

    def host_key(self, node: NodeView, cell: CellSpec) -> tuple:
        return host_key(node.placements[cell.scope], cell.remedy.kernel_cache, self.sweep.execution.process,
                        1 if cell.model.device == "cuda" else 0)

    def runs_on(self, node: NodeView, host: Host | None) -> Callable[[CellSpec], bool] | None:
        """Whether ``host`` can run a cell on ``node`` (None: the node has no host)."""
        if host is None:
            return None
        return lambda cell: self.host_key(node, cell) == host.key

    def launch(self) -> None:
        for nid in sorted(self.idle):
            node = self.by_id[nid]
            current = self.hosts.get(nid)
            p = self.sched.next_for(nid, prefer=self.runs_on(node, current))
            if p is None:
                continue
            placement = node.placements[p.cell.scope]
            key = self.host_key(node, p.cell)
            if current is None or current.key != key:
                if current is not None:      # its zygote ends before another starts beside it
                    ray_io.close_hosts([current.handle])
                # exclusive: the host books every CPU of the node, so Ray places nothing beside it
                cpus = node.cpus if self.sweep.execution.exclusive else placement.threads
                # Ray hides every GPU from an actor that books none (CUDA_VISIBLE_DEVICES="")
                current = Host(key, ray_io.start_host(nid, cpus, 1 if p.cell.model.device == "cuda" else 0,
                                                      placement, p.cell.remedy.kernel_cache,
                                                      self.sweep.execution.process))
                self.hosts[nid] = current
            # the cell runs with its own scope's placement record (scopes with the same CPUs share a host)
            ref = ray_io.run_cell(current.handle, (p.cell, self.sweep.dataset, node.name, placement))
            self.inflight[ref] = Running(p, node, time.monotonic(), current)
            self.idle.discard(nid)

    def collect(self) -> None:
        for ref in ray_io.wait_one([*self.inflight, *self.dp.inflight], POLL_S):
            if ref in self.dp.inflight:
                self.dp.collect(ref)
                continue
            r = self.inflight.pop(ref)
            nid = r.node.ray_node_id
            try:
                outcome = ray_io.fetch(ref)
            except Exception as e:  # process death, OOM kill, node loss, a host that died
                failure = ray_io.classify(e)
                if r.stopping is not None:
                    failure = Failure(FailureKind.TIMEOUT, f"cell ran over {self.sweep.execution.cell_timeout_s:.0f} s")
                if not ray_io.node_alive(nid):
                    failure = failure.on_lost_node(r.node.name)
                    self.lose_node(nid)     # before the retry, so it cannot land there again
                elif not isinstance(getattr(e, "cause", None), CellProcessDied):
                    self.drop_host(nid, r.host)    # the host itself failed: the next cell gets a new one
                self.crashed(r.pending, r.node, failure)
            else:
                # apart from the fetch: a result that cannot be written is the driver's failure,
                # never a reason to train the cell again
                self.finish(r.pending, r.node, outcome)
            if nid not in self.sched.dead:
                self.idle.add(nid)

    def drop_host(self, nid: str, host: Host) -> None:
        if self.hosts.get(nid) is host:
            del self.hosts[nid]
        ray_io.kill_host(host.handle)

    def check_timeouts(self) -> None:
        self.dp.check_timeouts()
        limit = self.sweep.execution.cell_timeout_s
        now = time.monotonic()
        for r in list(self.inflight.values()):
            # counted from its launch: waiting for the node's CPUs or its zygote counts too
            if r.stopping is None and now - r.started > limit:
                r.stopping = now
                ray_io.stop_cell(r.host.handle)      # its run ends once the cell's process is gone
            elif r.stopping is not None and now - r.stopping > STOP_GRACE_S:
                # the host does not answer: end it (its zygote and cell end with it); its run
                # then fails, and only then is the node idle
                self.drop_host(r.node.ray_node_id, r.host)
                r.stopping = now

    def check_nodes(self) -> None:
        now = time.monotonic()
        if now - self.last_node_check < NODE_CHECK_S:
            return
        self.last_node_check = now
        alive = ray_io.alive_node_ids()
        if alive is None:      # the GCS missed a reply: ask again next tick, lose nobody
            return
        for nid in set(self.by_id) - alive - self.sched.dead:
            self.lose_node(nid)
            for ref, r in list(self.inflight.items()):
                if r.node.ray_node_id == nid:
                    self.inflight.pop(ref)
                    self.crashed(r.pending, r.node,
                                 Failure(FailureKind.NODE_LOST, f"{r.node.name} left the cluster mid-cell"))

    def lose_node(self, nid: str) -> None:
        """Stop giving work to a node that left; fail the queued cells only it could run. Once
        per node: the periodic node check and a cell's own failure may both see it go."""
        if nid in self.sched.dead:
            return
        self.bar.write(f"node {self.by_id[nid].name} left the cluster")
        self.idle.discard(nid)
        for p in self.sched.node_lost(nid):
            self.crashed(p, self.by_id[nid], Failure(FailureKind.NODE_LOST, "no live node of its cluster is left"))

    def finish(self, p: Pending, node: NodeView | None, outcome: CellOutcome) -> None:
        """Write the cell's row and steps. A write that fails (a full disk) fails the sweep,
        not the cell: the result is kept in a file of its own and the cell is not run again."""
        row = cell_row(p.cell, _ref(node), len(p.tried), outcome)
        try:
            self.store.write_cell(row, outcome.steps)
        except Exception as e:  # the cell ran; only its writing failed
            kept = keep_unwritten(p.cell.cell_id, row, outcome.steps)
            why = f"{FailureKind.DRIVER_ERROR.value}: its result could not be written: {type(e).__name__}: {e}"
            where_ = f"kept in {kept}" if kept else "and could not be kept elsewhere either"
            self.summary.failed.append((p.cell.cell_id, f"{why} ({where_})"))
            self.summary.unwritten += 1
            self.bar.write(f"{where(p.cell, node.name if node else None)}: {why} ({where_})")
        else:
            self.bar.write(self.summarise(p.cell, node, outcome).line())
        self.bar.update(1)
        self.bar.set_postfix(failed=len(self.summary.failed))

    def summarise(self, cell: CellSpec, node: NodeView | None, outcome: CellOutcome) -> CellSummary:
        label = where(cell, node.name if node else None)
        if outcome.status == "ok":
            self.summary.ok += 1
            value = cell_s_per_mp(outcome.steps.to_pandas()) if outcome.steps is not None else None
            return CellSummary(cell.cell_id, label, "ok", value)
        first = (outcome.error or "").splitlines()[0] if outcome.error else ""
        self.summary.failed.append((cell.cell_id, first))
        return CellSummary(cell.cell_id, label, outcome.status, first_error=first)

    def crashed(self, p: Pending, node: NodeView | None, failure: Failure) -> None:
        if (node and node.memory_bytes and p.peak_bytes > 0.8 * node.memory_bytes
                and failure.kind is FailureKind.PROCESS_DIED):
            failure = failure.with_note(f"(the plan estimated {p.peak_bytes / 1e9:.1f} GB of the node's "
                                        f"{node.memory_bytes / 1e9:.1f} GB: likely killed for out of memory)")
        if failure.kind.retryable and self.sched.after_crash(p):
            elsewhere = (f"on another node of {p.cell.cluster}" if self.sched.untried_left(p)
                         else f"on the same node (no other node of {p.cell.cluster} is left)")
            self.bar.write(f"{p.cell.cell_id}: {failure} on {node.name if node else '-'}; retrying {elsewhere}")
            self.record_attempt(p, node, failure)
            return
        self.finish(p, node, CellOutcome.not_run("failed", str(failure)))

    def record_attempt(self, p: Pending, node: NodeView | None, failure: Failure) -> None:
        """Write a failed attempt that is being retried as the cell's row at once: until the
        retry's own row replaces it, the folder says why the cell is running again, and a driver
        killed meanwhile leaves that cause behind (a resume runs the cell again, as any failed
        one). Not counted as a failure: the retry decides the cell's outcome. A write that fails
        is only reported: the attempt's cause is in the log, and the retry's row is what counts."""
        row = cell_row(p.cell, _ref(node), len(p.tried), CellOutcome.not_run("failed", str(failure)))
        try:
            self.store.write_cell(row, None)
        except Exception as e:  # the retry goes on; its own row is written (or kept) by finish
            self.bar.write(f"{p.cell.cell_id}: the failed attempt could not be written: {type(e).__name__}: {e}")


def keep_unwritten(cell_id: str, row: dict[str, Any], steps: Any) -> Path | None:
    """A cell's row and steps that the results folder did not take, pickled into a new
    private folder (``mkdtemp``: mode 700, a name nobody can guess); None if that fails too."""
    try:
        d = Path(tempfile.mkdtemp(prefix=f"hrvs-unwritten-{cell_id[:60]}-"))
        (d / "cell.pickle").write_bytes(pickle.dumps({"row": row, "steps": steps}))
        return d
    except Exception:  # nowhere to keep it: the message says so
        return None
