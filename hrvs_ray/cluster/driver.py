"""The sweep driver: connect to Ray, probe nodes, schedule cells on node-scope actors,
write every finished cell to disk at once, survive dead actors and lost nodes.

Every wait has a timeout: a node that vanishes never hangs the driver.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Sweep
from ..data.mame import open_dataset
from ..metrics import derive
from ..plan import CellSpec, cell_peak_bytes, check_batch_sizes, plan_cells
from ..store import ResultStore
from .nodes import NodeView, assign_clusters, name_nodes
from .scheduler import Pending, Scheduler

log = logging.getLogger("hrvs_ray")

PROBE_TIMEOUT_S = 180.0
ACTOR_START_TIMEOUT_S = 600.0   # placement + torch import; a node whose CPUs stay booked fails here
POLL_S = 2.0
NODE_CHECK_S = 5.0


class NoUsableNodes(RuntimeError):
    """The Ray cluster has no node this sweep may use (none alive, or none matches its clusters)."""


@dataclass
class SweepSummary:
    total: int = 0
    already_done: int = 0
    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0


def connect(address: str | None) -> None:
    """Local default: Ray on loopback only (Ray treats a loopback node IP as a single-host
    cluster only when told it may not cluster), no dashboard, token authentication as Ray
    2.60 enables it by default. With ``address`` (``auto`` or HOST:PORT) join that cluster."""
    if address is None:
        # Ray picks a loopback node IP only where it believes clustering is unsupported; it
        # reads this switch when imported, so set it before the import (it also reaches the
        # raylet, GCS and workers we start) and on the constant if Ray is already loaded.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        if "ray" in sys.modules:
            import ray._private.ray_constants as rc

            rc.ENABLE_RAY_CLUSTER = False
    import ray

    if address is None:
        # "local" always starts a fresh Ray: never join a stray cluster left on this host.
        ray.init(address="local", include_dashboard=False, log_to_driver=False, num_cpus=os.cpu_count(),
                 logging_level=logging.WARNING, configure_logging=True)
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)


def discover_nodes(scopes: set[str]) -> list[NodeView]:
    """Alive nodes with CPUs, each probed on itself (hard affinity) for hardware and scopes."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .actors import probe_node

    alive = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    probe = ray.remote(num_cpus=0, max_retries=0)(probe_node)
    refs = {n["NodeID"]: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(sorted(scopes)) for n in alive}
    # one deadline for all probes: k unreachable nodes cost one timeout, not k
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    ready = set(ready)
    nodes = []
    for n in alive:
        ref = refs[n["NodeID"]]
        try:
            if ref not in ready:
                raise TimeoutError(f"no answer within {PROBE_TIMEOUT_S:.0f} s")
            got = ray.get(ref, timeout=10)
        except Exception as e:  # a node that cannot be probed is not used, and we say so
            log.warning("node %s: probe failed (%s); not used", n["NodeID"][:8], e)
            continue
        nodes.append(NodeView(ray_node_id=n["NodeID"], hostname=got["hostname"],
                              labels=dict(n.get("Labels") or {}), cpus=int(n["Resources"]["CPU"]),
                              memory_bytes=int(got["info"].get("memory_bytes") or 0),
                              info=got["info"], placements=got["placements"]))
    name_nodes(nodes)
    return nodes


def feasibility(sweep: Sweep, cell: CellSpec, nodes: list[NodeView], peak: int) -> tuple[set[str], str]:
    """Node ids of the cell's cluster that can run it, or the reason none can."""
    reasons = []
    ok = set()
    for n in nodes:
        if n.cluster != cell.cluster:
            continue
        p = n.placements.get(cell.scope)
        if isinstance(p, str):
            reasons.append(f"{n.name}: {p}")
            continue
        limit = int(n.memory_bytes * sweep.execution.memory_headroom)
        if sweep.model.device == "cpu" and n.memory_bytes and peak > limit:
            reasons.append(f"{n.name}: estimated peak memory {peak / 1e9:.1f} GB exceeds "
                           f"{sweep.execution.memory_headroom:.0%} of the node's {n.memory_bytes / 1e9:.1f} GB")
            continue
        ok.add(n.ray_node_id)
    return ok, "; ".join(reasons) or "no node of this cluster in the Ray cluster"


def classify(exc: BaseException) -> str:
    """A failure cause in words a user can act on. Ray's generic actor-death text lists OOM
    among possible reasons, so only Ray's own OOM error (its memory monitor) counts as
    'out of memory'; a SIGKILL from elsewhere stays 'process died' with Ray's detail line."""
    import ray.exceptions as rex

    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if any(w in ln for w in ("exit", "SIG", "kill", "Kill", "crash"))),
                  lines[0] if lines else type(exc).__name__)
    if isinstance(exc, rex.OutOfMemoryError) or "memory monitor" in str(exc):
        return f"out of memory: {detail}"
    detail = detail if len(detail) <= 300 else detail[:297] + "..."
    if isinstance(exc, (rex.NodeDiedError, rex.LocalRayletDiedError)):
        return f"node lost: {detail}"
    if isinstance(exc, (rex.ActorDiedError, rex.RayActorError, rex.WorkerCrashedError)):
        return f"process died: {detail}"
    return f"{type(exc).__name__}: {detail}"


def base_record(cell: CellSpec, node: NodeView | None) -> dict[str, Any]:
    return {"sweep": cell.sweep, "cell_id": cell.cell_id, "cluster": cell.cluster,
            "node": node.name if node else None, "ray_node_id": node.ray_node_id if node else None,
            "hostname": node.hostname if node else None, "scope": cell.scope,
            "input_set": cell.input_set.name, "run": cell.run, "spec_json": cell.to_json()}


def run_sweep(sweep: Sweep, out: Path, address: str | None = None, fresh: bool = False,
              progress: bool = True) -> SweepSummary:
    """Run every missing cell of ``sweep`` into ``out``; return what happened."""
    import ray

    t_start = time.perf_counter()
    summary = SweepSummary()
    # Actors on other nodes resolve paths against their own working directory: send absolute
    # ones (the dataset and cache must be visible at the same path on every node).
    sweep = replace(sweep, dataset=replace(sweep.dataset, path=str(Path(sweep.dataset.path).resolve()),
                                           cache=str(Path(sweep.dataset.cache).resolve())))
    dataset = open_dataset(sweep.dataset)   # generates the synthetic dataset once, checks MAMe
    check_batch_sizes(sweep, len(dataset), str(dataset.root))
    store = ResultStore.open(out, sweep.name, sweep.fingerprint(), sweep.to_dict(), fresh=fresh)

    connect(address)
    try:
        nodes = usable_nodes(sweep, store, summary)
        pending = pending_cells(sweep, store, nodes, dataset.table.heights, dataset.table.widths, summary)
        loop = CellLoop(sweep, store, nodes, Scheduler(pending, sweep.execution.retries), summary,
                        _progress(summary.total, summary.already_done + len(summary.skipped), progress))
        loop.run()
    finally:
        ray.shutdown()
    summary.wall_seconds = time.perf_counter() - t_start
    return summary


def usable_nodes(sweep: Sweep, store: ResultStore, summary: SweepSummary) -> list[NodeView]:
    """Probe the Ray cluster's nodes, give each its cluster, record them in ``nodes``."""
    all_scopes = set(sweep.scopes) | {s for c in sweep.clusters for s in (c.scopes or ())}
    nodes = discover_nodes(all_scopes)
    summary.notes += assign_clusters(nodes, sweep)
    nodes = [n for n in nodes if n.cluster]
    if not nodes:
        raise NoUsableNodes("no usable node in the Ray cluster: " + "; ".join(summary.notes or ["none alive"]))
    for n in nodes:
        store.write_node({**n.info, "node": n.name, "cluster": n.cluster, "hostname": n.hostname,
                          "ray_node_id": n.ray_node_id, "collected_at": datetime.now(timezone.utc)})
    present = {n.cluster for n in nodes}
    summary.notes += [f"cluster {c.name}: no node in this Ray cluster; its cells were not run"
                      for c in sweep.clusters if c.name not in present]
    return nodes


def pending_cells(sweep: Sweep, store: ResultStore, nodes: list[NodeView], heights: Any, widths: Any,
                  summary: SweepSummary) -> list[Pending]:
    """Cells still to run. Finished ones are left alone; ones no node can run (scope or
    memory) are recorded as skipped, with the reason, before anything starts."""
    cells = plan_cells(sweep, sorted({n.cluster for n in nodes}))
    done = store.finished()
    summary.total = len(cells)
    pending = []
    for cell in cells:
        if done.get(cell.cell_id) == "ok":
            summary.already_done += 1
            continue
        peak = cell_peak_bytes(cell, heights, widths)
        feasible, why = feasibility(sweep, cell, nodes, peak)
        if feasible:
            pending.append(Pending(cell, feasible, peak_bytes=peak))
            continue
        now = datetime.now(timezone.utc)
        store.write_cell({**base_record(cell, None), "status": "skipped", "error": why,
                          "attempts": 0, "started_at": now, "finished_at": now}, None)
        summary.skipped.append((cell.cell_id, why))
    return pending


@dataclass
class Running:
    pending: Pending
    node: NodeView
    actor: Any
    started: float
    ready_ref: Any = None
    up: bool = False


class CellLoop:
    """Dispatch cells to idle nodes (one at a time per node), collect them, react to
    crashes, timeouts and lost nodes. Each finished cell is written before the next wait."""

    def __init__(self, sweep: Sweep, store: ResultStore, nodes: list[NodeView], sched: Scheduler,
                 summary: SweepSummary, bar: Any) -> None:
        import ray

        from .actors import CellRunner

        self.sweep, self.store, self.sched, self.summary, self.bar = sweep, store, sched, summary, bar
        self.by_id = {n.ray_node_id: n for n in nodes}
        self.idle = set(self.by_id)
        self.inflight: dict[Any, Running] = {}
        self.runner = ray.remote(CellRunner)
        self.last_node_check = 0.0

    def run(self) -> None:
        try:
            while len(self.sched) or self.inflight:
                self.launch()
                if not self.inflight:
                    for p in list(self.sched.queue):   # queued, but no live node may take them
                        self.sched.queue.remove(p)
                        self.crashed(p, None, "node lost: no live node of its cluster is left")
                    break
                self.collect()
                self.check_timeouts()
                self.check_nodes()
        finally:
            for r in self.inflight.values():
                _kill(r.actor)
            self.bar.close()

    def launch(self) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for nid in sorted(self.idle):
            p = self.sched.next_for(nid)
            if p is None:
                continue
            node = self.by_id[nid]
            placement = node.placements[p.cell.scope]
            # exclusive: the actor books every CPU of the node, so Ray places nothing beside it
            cpus = node.cpus if self.sweep.execution.exclusive else placement.threads
            actor = self.runner.options(
                num_cpus=cpus, max_restarts=0, max_task_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False),
            ).remote(placement, p.cell.counters.llc)
            ready_ref = actor.ready.remote()   # actor tasks run in order: ready first, then run
            ref = actor.run.remote(p.cell.to_json(), self.sweep.dataset, node.name)
            self.inflight[ref] = Running(p, node, actor, time.monotonic(), ready_ref)
            self.idle.discard(nid)

    def collect(self) -> None:
        import ray

        ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=POLL_S)
        for ref in ready:
            r = self.inflight.pop(ref)
            nid = r.node.ray_node_id
            try:
                got = ray.get(ref, timeout=60)
                self.record(r.pending, r.node, got["record"], got["steps"])
            except Exception as e:  # process death, OOM kill, node loss
                cause = classify(e)
                if not _alive(nid):
                    cause = f"node lost: {r.node.name} left the cluster mid-cell ({cause})"
                    self.lose_node(nid)     # before the retry, so it cannot land there again
                self.crashed(r.pending, r.node, cause)
            _kill(r.actor)
            if nid not in self.sched.dead:
                self.idle.add(nid)

    def check_timeouts(self) -> None:
        import ray

        limit = self.sweep.execution.cell_timeout_s
        now = time.monotonic()
        for ref, r in list(self.inflight.items()):
            if not r.up:
                r.up = bool(ray.wait([r.ready_ref], timeout=0)[0])
            cause = None
            if not r.up and now - r.started > ACTOR_START_TIMEOUT_S:
                cause = (f"timeout: the cell's process did not start within {ACTOR_START_TIMEOUT_S:.0f} s "
                         f"(node CPUs still booked, or placement failed)")
            elif now - r.started > limit:
                cause = f"timeout: cell ran over {limit:.0f} s"
            if cause:
                self.inflight.pop(ref)
                _kill(r.actor)
                self.crashed(r.pending, r.node, cause)
                self.idle.add(r.node.ray_node_id)

    def check_nodes(self) -> None:
        import ray

        now = time.monotonic()
        if now - self.last_node_check < NODE_CHECK_S:
            return
        self.last_node_check = now
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        for nid in set(self.by_id) - alive - self.sched.dead:
            self.lose_node(nid)
            for ref, r in list(self.inflight.items()):
                if r.node.ray_node_id == nid:
                    self.inflight.pop(ref)
                    self.crashed(r.pending, r.node, f"node lost: {r.node.name} left the cluster mid-cell")

    def lose_node(self, nid: str) -> None:
        """Stop giving work to a node that left; fail the queued cells only it could run."""
        self.bar.write(f"node {self.by_id[nid].name} left the cluster")
        self.idle.discard(nid)
        for p in self.sched.node_lost(nid):
            self.crashed(p, self.by_id[nid], "node lost: no live node of its cluster is left")

    def record(self, p: Pending, node: NodeView | None, rec: dict[str, Any], steps: Any) -> None:
        rec = {**base_record(p.cell, node), "attempts": len(p.tried), **rec}
        self.store.write_cell(rec, steps)
        where = f"{p.cell.cluster} {node.name if node else '-'} {p.cell.scope} {p.cell.input_set.name} run {p.cell.run}"
        if rec["status"] == "ok":
            self.summary.ok += 1
            line = f"{where}: ok, {_s_per_mp(steps):.3f} s/MP"
        else:
            first = (rec.get("error") or "").splitlines()[0] if rec.get("error") else ""
            self.summary.failed.append((p.cell.cell_id, first))
            line = f"{where}: FAILED: {first}"
        self.bar.update(1)
        self.bar.set_postfix(failed=len(self.summary.failed))
        self.bar.write(line)

    def crashed(self, p: Pending, node: NodeView | None, cause: str) -> None:
        if node and node.memory_bytes and p.peak_bytes > 0.8 * node.memory_bytes and "process died" in cause:
            cause += (f" (the plan estimated {p.peak_bytes / 1e9:.1f} GB of the node's "
                      f"{node.memory_bytes / 1e9:.1f} GB: likely killed for out of memory)")
        if self.sched.after_crash(p):
            self.bar.write(f"{p.cell.cell_id}: {cause} on {node.name if node else '-'}; "
                           f"retrying on another node of {p.cell.cluster}")
            return
        now = datetime.now(timezone.utc)
        self.record(p, node, {"status": "failed", "error": cause, "started_at": now, "finished_at": now}, None)


def _alive(node_id: str) -> bool:
    import ray

    try:
        return any(n["NodeID"] == node_id and n.get("Alive") for n in ray.nodes())
    except Exception:  # the GCS itself is unreachable: treat the node as gone
        return False


def _kill(actor: Any) -> None:
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already dead: nothing to free
        pass


def _s_per_mp(steps: Any) -> float:
    d = derive(steps.to_pandas())
    d = d[~d["warmup"]]
    return float(d["s_per_mp"].median()) if len(d) else float("nan")


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def write(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)
    def close(self) -> None: ...


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="cell", desc="cells", file=sys.stderr,
                dynamic_ncols=True, disable=None)
