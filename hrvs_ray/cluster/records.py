"""What crosses the Ray boundary and what lands in ``cells.parquet``, as frozen records.

Pure: no ray, no torch. A ``CellOutcome`` is what a cell's process returns (or what the
driver concludes when the process could not return); ``cell_row`` is the one place a row
of ``cells`` is assembled from it; ``CellSummary`` is what a person sees per cell.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any

from ..plan.cells import CellSpec
from ..scopes import ranks_of
from .provenance import driver_identity


@dataclass(frozen=True)
class ProcessFacts:
    """How the cell's process actually ran: read back after placement, not as requested."""
    threads: int
    cpus: tuple[int, ...]
    numa_binding: str
    placement_warning: str | None
    core_kinds: str | None          # JSON object: core kind -> cores used
    hostname: str
    pid: int
    torch_version: str
    ray_version: str
    hrvs_ray_version: str
    python_version: str
    git_revision: str | None = None
    container_image: str | None = None
    container_digest: str | None = None
    in_container: bool | None = None
    scheduler_job_id: str | None = None
    scheduler_nodelist: str | None = None
    allocator: str | None = None    # glibc | jemalloc | tcmalloc | mimalloc (probes.allocator)
    process: str | None = None      # fork (of the node's zygote) | fresh (execution.process)

    @classmethod
    def known(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The keys of ``values`` this record has (provenance may carry more)."""
        names = {f.name for f in fields(cls)}
        return {k: v for k, v in values.items() if k in names}


@dataclass(frozen=True)
class CellOutcome:
    status: str                       # ok | failed | skipped
    error: str | None
    started_at: datetime
    finished_at: datetime
    wall_seconds: float | None = None
    prepare_seconds: float | None = None
    images_decoded: int | None = None
    images_cached: int | None = None
    baseline_rss_bytes: int | None = None
    compiler_version: str | None = None      # compiled cells (train.compiling)
    compile_cache_state: str | None = None   # compiled cells: empty | filled (N files) at the start
    facts: ProcessFacts | None = None
    steps: Any = None                 # pyarrow.Table of the steps, or None
    # a data-parallel cell's own columns (ranks, dp_backend, dp_backend_version,
    # ray_train_version, rank_layout: train.data_parallel.summarise); None for one rank
    data_parallel: dict[str, Any] | None = None

    @staticmethod
    def not_run(status: str, why: str) -> CellOutcome:
        """A cell that never ran (skipped before start, failed by the driver)."""
        now = datetime.now(timezone.utc)
        return CellOutcome(status=status, error=why, started_at=now, finished_at=now)


@dataclass(frozen=True)
class NodeRef:
    name: str
    ray_node_id: str
    hostname: str


def cell_row(cell: CellSpec, node: NodeRef | None, attempts: int, outcome: CellOutcome) -> dict[str, Any]:
    """The ``cells`` row of one cell: its identity, the remedy it ran, the outcome."""
    row: dict[str, Any] = {
        "sweep": cell.sweep, "cell_id": cell.cell_id, "cluster": cell.cluster, "scope": cell.scope,
        "input_set": cell.input_set.name, "run": cell.run, "spec_json": cell.to_json(batches=False),
        "node": node.name if node else None, "ray_node_id": node.ray_node_id if node else None,
        "hostname": node.hostname if node else None, "attempts": attempts, **cell.remedy.to_row(),
        # the driver's code beside the cell process's (hrvs_ray_version, git_revision below)
        **driver_identity(),
    }
    apart = ("facts", "steps", "data_parallel")
    out = {f.name: getattr(outcome, f.name) for f in fields(outcome) if f.name not in apart}
    row.update(out)
    row["ranks"] = ranks_of(cell.scope)
    row.update(outcome.data_parallel or {})
    if outcome.facts is not None:
        facts = asdict(outcome.facts)
        facts["cpus"] = list(facts["cpus"])
        row.update(facts)
    return row


@dataclass(frozen=True)
class CellSummary:
    """One finished cell in a line: where it ran, what it ran, what it measured."""
    cell_id: str
    where: str
    status: str
    s_per_mp: float | None = None
    statistic: str = "Σ s ÷ Σ MP"
    first_error: str | None = None

    def line(self) -> str:
        if self.status == "ok":
            value = "n/a" if self.s_per_mp is None else f"{self.s_per_mp:.3f}"
            return f"{self.where}: ok, {value} s/MP ({self.statistic} of timed steps)"
        return f"{self.where}: FAILED: {self.first_error or ''}"


def where(cell: CellSpec, node_name: str | None) -> str:
    """How a cell is named to a person: cluster, node, scope, input set, remedy, run."""
    return (f"{cell.cluster} {node_name or '-'} {cell.scope} {cell.input_set.name} "
            f"{cell.remedy.label} run {cell.run}")


def core_kinds_json(counts: dict[str, int] | None) -> str | None:
    return json.dumps(counts, sort_keys=True) if counts else None
