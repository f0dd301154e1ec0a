"""The sweep driver: pre-flight the sweep, open its results folder, join Ray, find the
nodes the sweep may use, plan the cells still to run (skipping those no node can hold), run
them in the cell loop (``cell_loop``), then measure each node's ceilings again and calibrate
the memory model on what ran.

Ray I/O lives in ``ray_io``, pure decisions (feasibility, retries) in ``scheduler``, the
records in ``records``. Every wait has a timeout: a node that vanishes never hangs the driver.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Sweep
from ..errors import UserError
from ..plan.cells import CellSpec, plan_cells
from ..plan.epoch import plan_record
from ..plan.memory_calibration import node_estimators, stored_calibration, write_calibration
from ..plan.memory_model import FitError, estimate_step_bytes
from ..plan.preflight import preflight_plans
from ..plan.step_plans import StepPlans
from ..store import ResultStore
from . import ray_io
from .cell_loop import CellLoop, SweepSummary
from .nodes import NodeView, assign_clusters
from .provenance import code_identity
from .ray_job import check_same_code
from .records import CellOutcome, cell_row
from .scheduler import Pending, Scheduler, triage
from .zygote_client import RESIDENT_BYTES


class NoUsableNodes(UserError, RuntimeError):
    """The Ray cluster has no node this sweep may use (none alive, or none matches its clusters)."""


def run_sweep(sweep: Sweep, out: Path, progress_factory: Any, address: str | None = None,
              fresh: bool = False, why: str = "", say: Callable[[str], None] = print) -> SweepSummary:
    """Run every missing cell of ``sweep`` into ``out``; return what happened.
    ``progress_factory(total, initial)`` gives the ``Progress`` to report to; ``address``
    (None: a private Ray) is joined, and ``say`` is told which Ray that was and ``why``."""
    t_start = time.perf_counter()
    summary = SweepSummary()
    # Cells on other nodes resolve paths against their own working directory: send absolute
    # ones (the dataset and cache must be visible at the same path on every node).
    sweep = replace(sweep, dataset=replace(sweep.dataset, path=str(Path(sweep.dataset.path).resolve()),
                                           cache=str(Path(sweep.dataset.cache).resolve())))
    # validates against the dataset, generates a synthetic one once, checks every needed
    # image's header: every bad image listed at once, before Ray starts or a folder is written
    _, plans = preflight_plans(sweep)
    store = ResultStore.open(out, sweep.name, sweep.fingerprint(), sweep.to_dict(), fresh=fresh,
                             plan_version=sweep.plan_version)
    # what the sweep's steps stand for, from the same plans: the report reads it, never the dataset
    store.write_plan(plan_record(sweep, plans))

    gcs = ray_io.connect(address)
    try:
        joined = (f"started a private Ray on this host ({gcs})" if address is None else
                  f"joined the Ray cluster at {gcs}, {ray_io.nodes_alive()} node(s) alive")
        say(f"Ray: {joined} [{why or ('--address ' + address if address else 'private')}]")
        nodes = usable_nodes(sweep, store, summary)
        pending = pending_cells(sweep, store, nodes, plans, summary)
        bar = progress_factory(summary.total, summary.already_done + len(summary.skipped))
        CellLoop(sweep, store, nodes, Scheduler(pending, sweep.execution.retries), summary, bar).run()
        if summary.ok or summary.failed:   # cells ran: each node's ceilings again, after its last cell
            recheck_ceilings(nodes, store)
    finally:
        ray_io.shutdown()
    if summary.ok:
        try:
            write_calibration(out)
        except Exception as e:  # the results are safe; a fit that fails only costs the fit
            summary.notes.append(f"memory model not calibrated on {out}: {type(e).__name__}: {e}")
    summary.wall_seconds = time.perf_counter() - t_start
    return summary


def usable_nodes(sweep: Sweep, store: ResultStore, summary: SweepSummary) -> list[NodeView]:
    """Probe the Ray cluster's nodes, give each its cluster, record them in ``nodes``."""
    all_scopes = set(sweep.scopes) | {s for c in sweep.clusters for s in (c.scopes or ())}
    failed: list[str] = []
    nodes = ray_io.discover_nodes(all_scopes, failed)
    summary.notes += failed      # a probe that timed out is a timeout, not a dead node
    # before any cell runs: a job's --working-dir copy of the source must be the driver's code
    check_same_code(code_identity(), {n.name: n.code for n in nodes})
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


def recheck_ceilings(nodes: list[NodeView], store: ResultStore) -> None:
    """Measure each node's ceilings again now that its cells are done, and record both with their
    drift (probes.ceiling.drift; the report flags > 10 %): a ceiling is one measurement of a shared
    machine, and this says whether it held over the sweep."""
    again = ray_io.recheck_ceilings({n.ray_node_id: n.info["ceilings"] for n in nodes if n.info.get("ceilings")})
    for n in nodes:
        if n.ray_node_id in again:
            n.info["ceilings"] = again[n.ray_node_id]
            store.write_node({**n.info, "node": n.name, "cluster": n.cluster, "hostname": n.hostname,
                              "ray_node_id": n.ray_node_id, "collected_at": datetime.now(timezone.utc)})


def pending_cells(sweep: Sweep, store: ResultStore, nodes: list[NodeView], plans: StepPlans,
                  summary: SweepSummary) -> list[Pending]:
    """Cells still to run, each carrying its step plan (from ``plans``, the pre-flight's: the
    node trains exactly it). Finished ones are left alone; ones no node can run (scope or
    memory) are recorded as skipped, with the reason, before anything starts."""
    cells = plan_cells(sweep, sorted({n.cluster for n in nodes}))
    # a resumed folder that already holds a fit of its own steps plans each node with the fits
    # of recorded nodes whose identity matches it, the built-in model elsewhere
    cal = stored_calibration(store.root)
    ests, notes = node_estimators(cal, {n.name: n.info for n in nodes}) if cal else ({}, [])
    summary.notes += notes

    def on(node: NodeView, px: int, cell: CellSpec) -> int:
        try:
            return ests[node.name](px, cell.remedy) if node.name in ests else estimate_step_bytes(px, cell.remedy)
        except FitError as e:
            del ests[node.name]
            summary.notes.append(f"memory pre-flight on node {node.name}: built-in model, {e}")
            return estimate_step_bytes(px, cell.remedy)

    def peak_of(cell: CellSpec) -> Any:
        px = plans.largest_pass(cell)
        if not ests:
            return estimate_step_bytes(px, cell.remedy)
        return lambda node: on(node, px, cell)

    # the cell's zygote stays resident beside it: the pre-flight counts it
    t = triage(cells, store.finished(), nodes, peak_of, sweep.execution.memory_headroom,
               RESIDENT_BYTES[sweep.execution.process])
    summary.total, summary.already_done = len(cells), t.already_done
    for cell, why in t.skipped:
        store.write_cell(cell_row(cell, None, 0, CellOutcome.not_run("skipped", why)), None)
        summary.skipped.append((cell.cell_id, why))
    return [replace(p, cell=p.cell.planned(plans.batches(p.cell))) for p in t.pending]
