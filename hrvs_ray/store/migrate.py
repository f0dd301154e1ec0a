"""The one place that knows older result formats: every reader gets current-schema rows.

Format history (like pyperf's JSON format history), newest first:

- **5** (issue 28, data-parallel cells on Ray Train): steps and cells gain ``ranks`` (int; 1
  for a single-rank cell; a data-parallel scope ``N*SCOPE`` has N) and ``split`` (the remedy
  axis: ``shard`` | ``balanced`` | ``uniform``); steps gain the per-rank lists
  ``rank_compute_seconds``, ``rank_sync_seconds``, ``rank_px`` (each rank's pixels as trained,
  padding included) and ``image_rank`` (the rank that trained each image, aligned with
  ``image_ids``), null for a single-rank step; cells gain ``dp_backend`` (``gloo`` | ``nccl``),
  ``dp_backend_version`` (NCCL's version for nccl, torch's for gloo), ``ray_train_version``
  and ``rank_layout`` (JSON: each rank's node, CPU set, threads, pid and pin check), null for
  a single-rank cell. A data-parallel step's ``seconds`` is its slowest rank's step,
  its ``cores`` the total over its ranks, and its pixel columns and ``image_ids`` cover the
  whole global batch. Older folders read as ``ranks`` = 1 (every cell was single-rank; a
  newer row without it, e.g. a skipped cell, takes its scope's rank count) and ``split`` =
  ``shard``, the rest null.
- **4** (issue 25): cells gain ``process``, how the cell's process started: ``fork`` (a fork
  of the node's zygote) or ``fresh`` (a new interpreter, ``execution.process: fresh``);
  ``unknown`` in older folders (they forked from a zygote since the zygote existed, and ran
  fresh processes before: the folder does not say which). Memory that does not depend on how it started:
  steps gain ``peak_anon_bytes``, ``anon_start_bytes``, ``file_start_bytes``,
  ``file_growth_bytes``, ``vmhwm_bytes``, ``library_bytes``, ``baseline_anon_bytes`` and
  ``other_cpu_seconds``; cells gain ``baseline_anon_bytes`` and ``library_bytes``; nodes gain
  ``library_bytes``. From schema 4 on, ``peak_rss_bytes`` = the node's ``library_bytes`` + the
  step's ``peak_anon_bytes`` (what a fresh process reads), ``rss_start_bytes`` and
  ``growth_bytes`` likewise. Older rows keep the process's own VmHWM in ``peak_rss_bytes`` and
  null in the new columns: from a forked cell it leaves out the library pages the fork did not
  touch (~0.3 GB), from a fresh process it does not (``process`` says which, "unknown" before).
  Also in 4 (issue 27, torch.compile): steps and cells gain ``compile`` (``eager`` before: nothing
  was compiled), ``compile_cache`` and ``recompile_limit`` (null: eager); steps gain ``replay``
  (false before: no step was replayed) and the compiler's per-step columns ``compiles``,
  ``compile_seconds``, ``recompile_limit_hit``, ``ran_eager``, ``graph_breaks``,
  ``compile_reasons``, ``compiler_child_peak_bytes`` (null before: not recorded); cells gain
  ``compiler_version`` and ``compile_cache_state`` (null before).

- **3** (issues 16, 17, 19): steps gain ``image_ids`` (the step's images, literal ids in pass
  order; null in older folders: they were not recorded), ``uncounted_threads`` (threads without
  a counter group during the step; null when counters are off) and ``steal_seconds``
  (hypervisor steal over the step); nodes gain ``ceilings`` (measured compute ceiling per
  scope, JSON text; null: not measured); sweep.json gains ``plan_version`` (absent: version 1);
  steps and cells gain the kernel-cache and shape-rounding axes (``kernel_cache``:
  ``default`` before, ``shape_round``: 0 before); steps gain ``distinct_shapes_seen`` and
  ``new_shape`` (null before: not recorded); cells gain ``allocator`` (null before); cells gain ``driver_version`` and
  ``driver_revision`` (the driver's hrvs-ray beside the cell process's ``hrvs_ray_version``
  and ``git_revision``; null in older folders).
- **2** (hrvs-ray 0.1, remedies): steps and cells gain the remedies axes (``batching``,
  ``precision``, ``memory_format``, ``checkpointing``, ``remedy``, ``window``, ``micro_batch``),
  steps gain ``micro_batches``, ``growth_bytes``, ``counter_time_fraction``, ``pass_px``; cells
  gain ``baseline_rss_bytes``, ``core_kinds``, ``placement_warning``; nodes gain the scope
  rules' columns (``physical_cores``, ``core_kinds``, ``numa_node_ids``, ``numa_warning``,
  ``unusable``).
- **1** (first release): the paper's method only: every cell ran ``pad`` batching without
  checkpointing, at the precision and memory format its rows (or its spec) name.

A file newer than this hrvs-ray is refused (upgrade to read it); an older one is filled here,
on read. A resumed older folder is rewritten in the current schema as cells are added.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from ..remedy_axes import PAPER, ROW_COLUMNS, RemediesSpec, Remedy
from ..scopes import ranks_of
from .schema import SCHEMA_VERSION, conform


class ResultsError(UserError, RuntimeError):
    """A results folder that cannot be used; the message names the folder and the fix."""


def check_version(path: Path, version: object) -> int:
    """The schema version of a file (or sweep.json), refused when newer than this hrvs-ray."""
    if version is None:
        raise ResultsError(f"{path}: no schema_version in parquet metadata: not written by hrvs-ray")
    v = int(version)
    if v > SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version {v} is newer than this hrvs-ray understands "
                           f"({SCHEMA_VERSION}); upgrade hrvs-ray to read it")
    if v < 1:
        raise ResultsError(f"{path}: schema_version {v} is older than any this hrvs-ray can read")
    return v


def upgrade_definition(d: dict[str, Any]) -> dict[str, Any]:
    """A ``sweep.json`` definition in the current form: one written before the remedies axes
    (schema 1) ran what its model section implies, the paper's setup at its precision and
    memory format."""
    if "remedies" in d:
        return d
    model = d.get("model", {})
    implied = RemediesSpec(precision=(model.get("precision", PAPER.precision),),
                           memory_format=(model.get("memory_format", PAPER.memory_format),))
    return {**d, "remedies": asdict(implied)}


def upgrade(path: Path, t: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table as stored (any readable version) -> the current ``schema``, old gaps filled."""
    md = t.schema.metadata or {}
    version = check_version(path, md.get(b"schema_version"))
    t = fill_defaults(conform(t, schema))
    if version < 4 and "process" in t.column_names:
        # schema < 4 did not record how the cell's process started; a newer row's null
        # means the cell never ran (skipped, or failed by the driver)
        t = t.set_column(t.column_names.index("process"), "process",
                         pa.array(["unknown"] * t.num_rows, pa.string()))
    return t


_FILLED = ("batching", "precision", "memory_format", "checkpointing", "remedy", "micro_batches", "growth_bytes",
           "pass_px", "kernel_cache", "shape_round", "compile", "replay", "ranks", "split")


def _scope_ranks(scope: pa.ChunkedArray | None, n: int) -> pa.Array:
    """Each row's rank count as its scope names it (1 for a single-rank or unknown scope)."""
    values = scope.to_pylist() if scope is not None else [None] * n
    return pa.array([_ranks_of(s) for s in values], pa.int32())


def _ranks_of(scope: object) -> int:
    try:
        return ranks_of(scope) if isinstance(scope, str) else 1   # type: ignore[arg-type]
    except ValueError:
        return 1


def fill_defaults(t: pa.Table) -> pa.Table:
    """The one place a row without its remedy or derived memory columns gets them: schema-1
    rows predate the remedies axes (every cell ran the paper's batching, without
    checkpointing, at the precision and memory format its rows or its spec name), and a
    reader should never have to guess them again.

    Column by column in Arrow (no pandas round trip): a report reads every steps file
    through here, so this runs once per cell file."""
    gaps = [c for c in _FILLED if c in t.column_names and t.column(c).null_count]
    if not t.num_rows or not gaps:
        return t
    cols = {c: t.column(c) for c in t.column_names}

    def put(name: str, values: Any) -> None:
        typed = isinstance(values, (pa.Array, pa.ChunkedArray))
        cols[name] = values if typed else pa.array(values, t.schema.field(name).type)

    if "spec_json" in cols and "precision" in cols and cols["precision"].null_count:
        models = [json.loads(j).get("model", {}) if isinstance(j, str) else {} for j in cols["spec_json"].to_pylist()]
        for c in ("precision", "memory_format"):
            if c in cols:
                put(c, [v if v is not None else m.get(c) for v, m in zip(cols[c].to_pylist(), models, strict=True)])
    # schema < 3: before the kernel-cache and shape-rounding axes every cell ran torch's
    # default caches and unrounded passes (distinct_shapes_seen / new_shape stay null);
    # schema < 4: nothing was compiled and no step replayed; schema < 5: one rank, which is
    # the shard split's own case (a 1-rank cell runs once, as shard)
    if "ranks" in cols and cols["ranks"].null_count:
        put("ranks", pc.coalesce(cols["ranks"], _scope_ranks(cols.get("scope"), t.num_rows)))
    constants = {"precision": "float32", "memory_format": "contiguous", "batching": "pad", "checkpointing": "none",
                 "kernel_cache": "default", "shape_round": 0, "compile": "eager", "replay": False,
                 "split": "shard"}
    for c, v in constants.items():
        if c in cols and cols[c].null_count:
            put(c, pc.fill_null(cols[c], pa.scalar(v, t.schema.field(c).type)))
    if "remedy" in cols and cols["remedy"].null_count:
        names = [n for n in ROW_COLUMNS if n in cols]
        rows = pa.table({n: cols[n] for n in names}).to_pylist()
        put("remedy", [r if r is not None else Remedy.from_row(row).label
                       for r, row in zip(cols["remedy"].to_pylist(), rows, strict=True)])
    if "micro_batches" in cols:
        put("micro_batches", pc.fill_null(cols["micro_batches"], pa.scalar(1, t.schema.field("micro_batches").type)))
        growth = pc.subtract(cols["peak_rss_bytes"], cols["rss_start_bytes"]).cast(t.schema.field("growth_bytes").type)
        put("growth_bytes", pc.coalesce(cols["growth_bytes"], growth))
        put("pass_px", pc.coalesce(cols["pass_px"], cols["total_px"].cast(t.schema.field("pass_px").type)))
    return pa.table([cols[c] for c in t.column_names], schema=t.schema)
