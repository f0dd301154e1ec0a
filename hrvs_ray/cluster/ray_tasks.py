"""The bodies of the Ray tasks a sweep starts on its nodes: plain functions that
``ray_io`` wraps at launch, so they stay importable without Ray."""
from __future__ import annotations

from ..config import DatasetSpec
from ..node.topology import ScopePlacement
from ..plan.cells import CellSpec
from .records import CellOutcome
from .zygote_client import connect, run_forked, stop_all


def run_forked_cell(placement: ScopePlacement, kernel_cache: str, token: str, node_id: str, spec: CellSpec,
                    dataset: DatasetSpec, node: str) -> CellOutcome:
    """A cell's Ray task. It books the CPUs the cell runs on, so Ray places nothing beside
    it, and has the cell run in a fresh fork of the node's zygote for the cell's placement
    and kernel-cache setting (``zygote``): the ~7 s of importing torch are paid once per
    node and setting, not per cell, and a task reuses Ray's worker process where an actor
    would start a new one (~1 s, and work beside the next cell). Cancelling the task (a
    force-cancel ends its worker) kills the cell."""
    conn = connect(token, node_id, placement, kernel_cache)
    try:
        return run_forked(conn, (spec, dataset, node))
    finally:
        conn.close()


def stop_zygotes(token: str) -> int:
    """Stop this node's zygotes of the sweep ``token`` (the driver calls it on every node)."""
    return stop_all(token)
