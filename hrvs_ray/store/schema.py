"""The results schema: the columns of steps, cells and nodes parquet files, the current
schema version, and ``conform`` (rows or an older table cast to a schema). Every change of
columns bumps ``SCHEMA_VERSION`` and gets a line in ``migrate.py``'s format history.

Pure: pyarrow only.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from .. import __version__

SCHEMA_VERSION = 5   # the format history is in migrate.py

STEPS_SCHEMA = pa.schema([
    ("sweep", pa.string()), ("cell_id", pa.string()), ("cluster", pa.string()), ("node", pa.string()),
    ("scope", pa.string()), ("cores", pa.int32()), ("input_set", pa.string()), ("batch_size", pa.int32()),
    ("run", pa.int32()), ("step", pa.int32()), ("warmup", pa.bool_()),
    ("batch_fingerprint", pa.string()), ("batch_height", pa.int32()), ("batch_width", pa.int32()),
    ("informative_px", pa.int64()), ("padding_px", pa.int64()), ("total_px", pa.int64()),
    ("seconds", pa.float64()), ("data_seconds", pa.float64()), ("loss", pa.float64()),
    ("rss_start_bytes", pa.int64()), ("peak_rss_bytes", pa.int64()), ("peak_rss_scope", pa.string()),
    ("device_peak_bytes", pa.int64()),
    ("cycles", pa.int64()), ("instructions", pa.int64()), ("llc_misses", pa.int64()),
    ("counter_status", pa.string()), ("counter_scaling", pa.float64()), ("llc_event", pa.string()),
    ("task_clock_ns", pa.int64()), ("page_faults", pa.int64()), ("context_switches", pa.int64()),
    ("cpu_seconds", pa.float64()), ("flops", pa.int64()),
    ("precision", pa.string()), ("memory_format", pa.string()), ("device", pa.string()),
    # schema 2: the remedies axes, passes per optimizer step, the step's own memory growth,
    # and the share of the step the counter group was scheduled on the PMU
    ("batching", pa.string()), ("checkpointing", pa.string()), ("remedy", pa.string()),
    ("window", pa.int32()), ("micro_batch", pa.int32()), ("micro_batches", pa.int32()),
    ("growth_bytes", pa.int64()), ("counter_time_fraction", pa.float64()),
    ("pass_px", pa.int64()),   # total pixels of the step's largest forward/backward pass
    # schema 3: the step's images (ids as the dataset names them: file names) in pass order
    ("image_ids", pa.list_(pa.string())),
    # and threads without a counter group during the step (null: counters off), and the
    # hypervisor's steal time over the step on the cell's CPUs (/proc/stat)
    ("uncounted_threads", pa.int32()), ("steal_seconds", pa.float64()),
    # and (issue 17): PyTorch's CPU kernel caches, shape rounding, and the distinct
    # pass shapes (batch x H x W) the cell had seen by the end of the step
    ("kernel_cache", pa.string()), ("shape_round", pa.int32()),
    ("distinct_shapes_seen", pa.int32()), ("new_shape", pa.bool_()),
    # schema 4 (issue 25): memory that does not depend on how the process started
    # (probes.memory): the step's peak anonymous memory and its start, the file-backed pages at
    # the start and their change over the step (the bound of the anonymous peak), the raw VmHWM,
    # the node's library baseline (peak_rss_bytes = library_bytes + peak_anon_bytes), the
    # cell's anonymous baseline; and other processes' CPU time on the cell's CPUs over the step
    ("peak_anon_bytes", pa.int64()), ("anon_start_bytes", pa.int64()), ("file_start_bytes", pa.int64()),
    ("file_growth_bytes", pa.int64()), ("vmhwm_bytes", pa.int64()), ("library_bytes", pa.int64()),
    ("baseline_anon_bytes", pa.int64()), ("other_cpu_seconds", pa.float64()),
    # schema 4 (issue 27): torch.compile and its parameters (null for eager), the replay of
    # the timed batches, and what the compiler did during the step (train.compiling)
    ("compile", pa.string()), ("compile_cache", pa.string()), ("recompile_limit", pa.int32()),
    ("replay", pa.bool_()), ("compiles", pa.int32()), ("compile_seconds", pa.float64()),
    ("recompile_limit_hit", pa.bool_()), ("ran_eager", pa.bool_()), ("graph_breaks", pa.int32()),
    ("compile_reasons", pa.string()), ("compiler_child_peak_bytes", pa.int64()),
    # schema 5 (issue 28): data-parallel cells. ``ranks`` (1: a single-rank step), the split
    # policy (``split``: a remedy axis, ``Remedy.to_row``), and per rank (null for a
    # single-rank step): compute up to its last gradient hook, sync from then until backward
    # returned, its pixels as trained (padding included), and which rank trained each image
    # (aligned with ``image_ids``). ``seconds`` is the slowest rank's step; ``cores`` the total
    # over the ranks; the pixel columns and ``image_ids`` cover the whole global batch.
    ("ranks", pa.int32()), ("split", pa.string()),
    ("rank_compute_seconds", pa.list_(pa.float64())), ("rank_sync_seconds", pa.list_(pa.float64())),
    ("rank_px", pa.list_(pa.int64())), ("image_rank", pa.list_(pa.int32())),
])
CELLS_SCHEMA = pa.schema([
    ("sweep", pa.string()), ("cell_id", pa.string()), ("cluster", pa.string()), ("node", pa.string()),
    ("scope", pa.string()), ("input_set", pa.string()), ("run", pa.int32()),
    ("status", pa.string()), ("error", pa.string()), ("attempts", pa.int32()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("finished_at", pa.timestamp("us", tz="UTC")),
    ("wall_seconds", pa.float64()), ("prepare_seconds", pa.float64()),
    ("images_decoded", pa.int64()), ("images_cached", pa.int64()),
    ("threads", pa.int32()), ("cpus", pa.list_(pa.int32())), ("numa_binding", pa.string()),
    ("hostname", pa.string()), ("ray_node_id", pa.string()), ("pid", pa.int64()),
    ("torch_version", pa.string()), ("ray_version", pa.string()), ("hrvs_ray_version", pa.string()),
    ("python_version", pa.string()), ("git_revision", pa.string()),
    ("driver_version", pa.string()), ("driver_revision", pa.string()),   # schema 3: the driver's code
    ("container_image", pa.string()), ("container_digest", pa.string()), ("in_container", pa.bool_()),
    ("scheduler_job_id", pa.string()), ("scheduler_nodelist", pa.string()),
    ("spec_json", pa.string()),
    # schema 2
    ("batching", pa.string()), ("precision", pa.string()), ("memory_format", pa.string()),
    ("checkpointing", pa.string()), ("remedy", pa.string()), ("window", pa.int32()), ("micro_batch", pa.int32()),
    ("baseline_rss_bytes", pa.int64()), ("core_kinds", pa.string()), ("placement_warning", pa.string()),
    # schema 3 (issue 17)
    ("kernel_cache", pa.string()), ("shape_round", pa.int32()), ("allocator", pa.string()),
    # schema 4 (issue 25): how the cell's process started, fork (of the node's zygote) | fresh;
    # baseline_rss_bytes = library_bytes + baseline_anon_bytes when the node's library baseline
    # is known (else the process's own RSS, as before)
    ("process", pa.string()), ("baseline_anon_bytes", pa.int64()), ("library_bytes", pa.int64()),
    # schema 4 (issue 27)
    ("compile", pa.string()), ("compile_cache", pa.string()), ("recompile_limit", pa.int32()),
    ("compiler_version", pa.string()), ("compile_cache_state", pa.string()),
    # schema 5 (issue 28): ranks, the split policy, and the data-parallel stack (null for a single-rank cell):
    # the torch.distributed backend (gloo | nccl), its version (NCCL's for nccl; torch's for
    # gloo, which ships inside torch) and Ray Train's
    ("ranks", pa.int32()), ("split", pa.string()), ("dp_backend", pa.string()),
    ("dp_backend_version", pa.string()), ("ray_train_version", pa.string()),
    # each rank's node, CPU set, threads, pid and pin check (JSON list in rank order)
    ("rank_layout", pa.string()),
])

NODES_SCHEMA = pa.schema([
    ("node", pa.string()), ("cluster", pa.string()), ("hostname", pa.string()), ("ray_node_id", pa.string()),
    ("cpu_model", pa.string()), ("vendor", pa.string()), ("sockets", pa.int32()),
    ("cores_per_socket", pa.int32()), ("threads_per_core", pa.int32()), ("logical_cpus", pa.int32()),
    ("numa_nodes", pa.int32()), ("l1d_kib", pa.int64()), ("l2_kib", pa.int64()), ("l3_kib", pa.int64()),
    ("memory_bytes", pa.int64()), ("isa", pa.list_(pa.string())), ("base_mhz", pa.float64()),
    ("kernel", pa.string()), ("perf_event_paranoid", pa.int32()), ("counters", pa.string()),
    ("peak_gflops_fp32", pa.float64()), ("collected_at", pa.timestamp("us", tz="UTC")),
    ("info_json", pa.string()),
    # added with the scope rules (absent in older files: read as null)
    ("physical_cores", pa.int32()), ("core_kinds", pa.string()), ("numa_node_ids", pa.list_(pa.int32())),
    ("numa_warning", pa.string()), ("unusable", pa.string()),
    # schema 3: the measured compute ceiling per scope (probes.ceiling), JSON text
    ("ceilings", pa.string()),
    # schema 4: file-backed memory of a fresh process that imported and ran the training code
    ("library_bytes", pa.int64()),
])

# nodes columns stored as JSON text <- the node description's key holding plain nested values
NODE_JSON_COLUMNS = {"counters": "counters", "core_kinds": "core_kinds", "info_json": "info", "ceilings": "ceilings"}


def node_row(node: dict[str, Any]) -> dict[str, Any]:
    """A node description (``node.description.collect_node_info``: plain nested values) as one
    nodes.parquet row: nested values become JSON text, so old and new files share one schema."""
    row = dict(node)
    row["library_bytes"] = node.get("library_bytes")     # measured by the node probe, not described
    for col, key in NODE_JSON_COLUMNS.items():
        v = node.get(key, node.get(col))
        row[col] = v if v is None or isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    return row


def with_version(schema: pa.Schema, extra: dict[str, str] | None = None) -> pa.Schema:
    """``schema`` carrying the current ``schema_version`` (and ``extra``) in its metadata."""
    md = {b"schema_version": str(SCHEMA_VERSION).encode(), b"hrvs_ray_version": __version__.encode()}
    for k, v in (extra or {}).items():
        md[k.encode()] = v.encode()
    return schema.with_metadata(md)


def conform(rows: Iterable[dict[str, Any]] | pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows (dicts, missing keys -> null) or a table, cast to ``schema`` in its column order."""
    if isinstance(rows, pa.Table):
        # the table's names once: ``Table.column_names`` builds a new list on every access
        have = set(rows.column_names)
        cols = {n: rows.column(n) if n in have else pa.nulls(rows.num_rows, schema.field(n).type)
                for n in schema.names}
        return pa.table([cols[n].cast(schema.field(n).type) for n in schema.names], schema=schema)
    rows = list(rows)
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


