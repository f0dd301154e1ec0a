"""The sweep driver: connect to Ray, probe nodes, schedule cells on node-scope actors,
write every finished cell to disk at once, survive dead actors and lost nodes.

Every wait has a timeout: a node that vanishes never hangs the driver.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..config import Sweep
from ..data.batching import batch_indices
from ..data.mame import open_dataset
from ..data.shapes import transformed_arrays
from ..plan import CellSpec, estimate_step_bytes, plan_cells
from ..store import ResultStore
from .nodes import NodeView, assign_clusters, name_nodes
from .scheduler import Pending, Scheduler

log = logging.getLogger("hrvs_ray")

PROBE_TIMEOUT_S = 180.0
POLL_S = 2.0
NODE_CHECK_S = 5.0


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
    import ray

    if address is None:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray.init(include_dashboard=False, log_to_driver=False, num_cpus=os.cpu_count(),
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
    nodes = []
    for n in alive:
        try:
            got = ray.get(refs[n["NodeID"]], timeout=PROBE_TIMEOUT_S)
        except Exception as e:  # a node that cannot be probed is not used, and we say so
            log.warning("node %s: probe failed (%s); not used", n["NodeID"][:8], e)
            continue
        nodes.append(NodeView(ray_node_id=n["NodeID"], hostname=got["hostname"],
                              labels=dict(n.get("Labels") or {}), cpus=int(n["Resources"]["CPU"]),
                              memory_bytes=int(got["info"].get("memory_bytes") or 0),
                              info=got["info"], placements=got["placements"]))
    name_nodes(nodes)
    return nodes


def cell_peak_bytes(sweep: Sweep, cell: CellSpec, heights: Any, widths: Any) -> int:
    """The plan's estimate of the cell's largest step (from metadata, no pixels)."""
    h, w = transformed_arrays(cell.input_set, heights, widths)
    idx = batch_indices(len(h), cell.seed, cell.run, cell.input_set.batch_size, cell.n_batches)
    total = (h[idx].max(axis=1) * w[idx].max(axis=1) * idx.shape[1]).max()
    return estimate_step_bytes(int(total), sweep.model.precision)


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
              progress: bool = True, echo: Callable[[str], None] = print) -> SweepSummary:
    """Run every missing cell of ``sweep`` into ``out``; return what happened."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .actors import CellRunner

    t_start = time.perf_counter()
    summary = SweepSummary()
    store = ResultStore.open(out, sweep.name, sweep.fingerprint(), sweep.to_dict(), fresh=fresh)
    dataset = open_dataset(sweep.dataset)   # generates the synthetic dataset once, checks MAMe
    heights, widths = dataset.table.heights, dataset.table.widths

    connect(address)
    try:
        all_scopes = set(sweep.scopes) | {s for c in sweep.clusters for s in (c.scopes or ())}
        nodes = discover_nodes(all_scopes)
        summary.notes += assign_clusters(nodes, sweep)
        nodes = [n for n in nodes if n.cluster]
        if not nodes:
            raise RuntimeError("no usable node in the Ray cluster: " + "; ".join(summary.notes or ["none alive"]))
        by_id = {n.ray_node_id: n for n in nodes}
        for n in nodes:
            store.write_node({**n.info, "node": n.name, "cluster": n.cluster, "hostname": n.hostname,
                              "ray_node_id": n.ray_node_id, "collected_at": datetime.now(timezone.utc)})
        clusters = sorted({n.cluster for n in nodes})
        for c in sweep.clusters:
            if c.name not in clusters:
                summary.notes.append(f"cluster {c.name}: no node in this Ray cluster; its cells were not run")

        cells = plan_cells(sweep, clusters)
        done = store.finished()
        summary.total = len(cells)
        pending = []
        for cell in cells:
            if done.get(cell.cell_id) == "ok":
                summary.already_done += 1
                continue
            peak = cell_peak_bytes(sweep, cell, heights, widths)
            feasible, why = feasibility(sweep, cell, nodes, peak)
            if not feasible:
                now = datetime.now(timezone.utc)
                store.write_cell({**base_record(cell, None), "status": "skipped", "error": why,
                                  "attempts": 0, "started_at": now, "finished_at": now}, None)
                summary.skipped.append((cell.cell_id, why))
                continue
            pending.append(Pending(cell, feasible, peak_bytes=peak))
        sched = Scheduler(pending, sweep.execution.retries)
        bar = _progress(summary.total, summary.already_done + len(summary.skipped), progress)

        runner = ray.remote(CellRunner)
        inflight: dict[Any, tuple[Pending, NodeView, Any, float]] = {}
        idle = set(by_id)
        last_node_check = 0.0

        def record(p: Pending, node: NodeView | None, rec: dict[str, Any], steps: Any) -> None:
            rec = {**base_record(p.cell, node), "attempts": len(p.tried), **rec}
            store.write_cell(rec, steps)
            if rec["status"] == "ok":
                summary.ok += 1
                s_mp = _s_per_mp(steps)
                line = (f"{p.cell.cluster} {node.name} {p.cell.scope} {p.cell.input_set.name} run {p.cell.run}: "
                        f"ok, {s_mp:.3f} s/MP")
            else:
                summary.failed.append((p.cell.cell_id, (rec.get("error") or "").splitlines()[0]))
                line = (f"{p.cell.cluster} {node.name if node else '-'} {p.cell.scope} {p.cell.input_set.name} "
                        f"run {p.cell.run}: FAILED: {(rec.get('error') or '').splitlines()[0]}")
            bar.update(1)
            bar.set_postfix(failed=len(summary.failed))
            bar.write(line)

        def crashed(p: Pending, node: NodeView | None, cause: str) -> None:
            if node and node.memory_bytes and p.peak_bytes > 0.8 * node.memory_bytes and "process died" in cause:
                cause += (f" (the plan estimated {p.peak_bytes / 1e9:.1f} GB of the node's "
                          f"{node.memory_bytes / 1e9:.1f} GB: likely killed for out of memory)")
            if sched.after_crash(p):
                bar.write(f"{p.cell.cell_id}: {cause} on {node.name}; retrying on another node of {p.cell.cluster}")
                return
            now = datetime.now(timezone.utc)
            record(p, node, {"status": "failed", "error": cause, "started_at": now, "finished_at": now}, None)

        try:
            while len(sched) or inflight:
                for nid in sorted(idle):
                    p = sched.next_for(nid)
                    if p is None:
                        continue
                    node = by_id[nid]
                    placement = node.placements[p.cell.scope]
                    cpus = node.cpus if sweep.execution.exclusive else placement.threads
                    actor = runner.options(
                        num_cpus=cpus, max_restarts=0, max_task_retries=0,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False),
                    ).remote(placement, p.cell.counters.llc)
                    ref = actor.run.remote(p.cell.to_json(), sweep.dataset, node.name)
                    inflight[ref] = (p, node, actor, time.monotonic())
                    idle.discard(nid)
                if not inflight:
                    if len(sched):
                        for p in list(sched.queue):
                            sched.queue.remove(p)
                            crashed(p, by_id[p.tried[-1]] if p.tried else None,
                                    "node lost: no live node of its cluster is left")
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    p, node, actor, _t = inflight.pop(ref)
                    try:
                        got = ray.get(ref, timeout=60)
                        record(p, node, got["record"], got["steps"])
                    except Exception as e:  # process death, OOM kill, node loss
                        cause = classify(e)
                        if not _alive(node.ray_node_id):
                            cause = f"node lost: {node.name} left the cluster mid-cell ({cause})"
                        crashed(p, node, cause)
                    _kill(actor)
                    if node.ray_node_id not in sched.dead:
                        idle.add(node.ray_node_id)
                now = time.monotonic()
                for ref, (p, node, actor, t0) in list(inflight.items()):
                    if now - t0 > sweep.execution.cell_timeout_s:
                        inflight.pop(ref)
                        _kill(actor)
                        crashed(p, node, f"timeout: cell ran over {sweep.execution.cell_timeout_s:.0f} s")
                        idle.add(node.ray_node_id)
                if now - last_node_check > NODE_CHECK_S:
                    last_node_check = now
                    alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
                    for nid in set(by_id) - alive - sched.dead:
                        bar.write(f"node {by_id[nid].name} left the cluster")
                        idle.discard(nid)
                        for p in sched.node_lost(nid):
                            crashed(p, by_id[nid], "node lost: no live node of its cluster is left")
                        for ref, (p, node, actor, t0) in list(inflight.items()):
                            if node.ray_node_id == nid:
                                inflight.pop(ref)
                                crashed(p, node, f"node lost: {node.name} left the cluster mid-cell")
        finally:
            for _p, _n, actor, _t in inflight.values():
                _kill(actor)
            bar.close()
    finally:
        ray.shutdown()
    summary.wall_seconds = time.perf_counter() - t_start
    return summary


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
    d = steps.to_pandas()
    d = d[~d["warmup"]]
    return float((d["seconds"] / (d["total_px"] / 1e6)).median()) if len(d) else float("nan")


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
