"""The results folder: parquet layout, schema, schema_version, atomic writes, resume.

Pure: pyarrow only, no torch, no ray. Layout of ``results/<sweep>/``::

    sweep.json                      the sweep definition and its fingerprint (identity check)
    steps/<cluster>/<cell_id>.parquet   one file per finished cell (steps are partitioned by
                                    cluster, then cell; each file lands by atomic rename)
    cells.parquet                   one row per cell that finished (ok | failed | skipped)
    nodes.parquet                   one row per node seen (the node-info description)

Only the driver writes. A cell counts as finished once its row is in ``cells.parquet``;
its steps file is renamed into place before that row is written, so a crash between the
two leaves at worst an orphan steps file, which readers ignore and a resume overwrites.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import SCHEMA_VERSION, __version__
from .remedies import Remedy
from .fsutil import atomic_write, atomic_write_text
from .names import path_component

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
])
REMEDY_COLUMNS = ("batching", "precision", "memory_format", "checkpointing", "remedy", "window", "micro_batch")

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
])

# nodes columns stored as JSON text <- the node description's key holding plain nested values
NODE_JSON_COLUMNS = {"counters": "counters", "core_kinds": "core_kinds", "info_json": "info"}


def node_row(node: dict[str, Any]) -> dict[str, Any]:
    """A node description (``probes.nodeinfo.collect_node_info``: plain nested values) as one
    nodes.parquet row: nested values become JSON text, so old and new files share one schema."""
    row = dict(node)
    for col, key in NODE_JSON_COLUMNS.items():
        v = node.get(key, node.get(col))
        row[col] = v if v is None or isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    return row

FINISHED = ("ok", "failed", "skipped")


class ResultsError(RuntimeError):
    """A results folder that cannot be used; the message names the folder and the fix."""


def _meta(schema: pa.Schema, extra: dict[str, str] | None = None) -> pa.Schema:
    md = {b"schema_version": str(SCHEMA_VERSION).encode(), b"hrvs_ray_version": __version__.encode()}
    for k, v in (extra or {}).items():
        md[k.encode()] = v.encode()
    return schema.with_metadata(md)


def conform(rows: Iterable[dict[str, Any]] | pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows (dicts, missing keys -> null) or a table, cast to ``schema`` in its column order."""
    if isinstance(rows, pa.Table):
        cols = {n: rows.column(n) if n in rows.column_names else pa.nulls(rows.num_rows, schema.field(n).type)
                for n in schema.names}
        return pa.table([cols[n].cast(schema.field(n).type) for n in schema.names], schema=schema)
    rows = list(rows)
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def _atomic_write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp), fsync=True)


_safe = path_component  # file names of existing results folders: the rule must not change


@dataclass
class ResultStore:
    """Writer side, used by the driver only."""
    root: Path
    sweep_name: str
    fingerprint: str

    @classmethod
    def open(cls, root: Path, sweep_name: str, fingerprint: str, definition: dict, fresh: bool = False) -> "ResultStore":
        """Open (or create) a results folder for this sweep. A folder holding another sweep's
        results is refused, never mixed; ``fresh`` moves nothing aside, it deletes our own
        earlier results only after checking they are ours or the folder is ours to reuse."""
        root = Path(root)
        ident = root / "sweep.json"
        if root.exists() and any(root.iterdir()):
            if not ident.is_file():
                raise ResultsError(f"{root}: exists, is not empty and holds no sweep.json: not an hrvs-ray "
                                   f"results folder; choose another --out")
            try:
                old = json.loads(ident.read_text())
            except (OSError, ValueError) as e:
                raise ResultsError(f"{ident}: unreadable ({e}); remove the folder or choose another --out") from None
            if fresh:
                if old.get("sweep") != sweep_name:
                    raise ResultsError(f"{root}: holds results of sweep {old.get('sweep')!r}, not {sweep_name!r}; "
                                       f"--fresh only clears a sweep's own folder; choose another --out")
                shutil.rmtree(root)
            elif old.get("fingerprint") != fingerprint or old.get("sweep") != sweep_name:
                raise ResultsError(
                    f"{root}: holds results of a different sweep definition ({old.get('sweep')!r}, "
                    f"fingerprint {old.get('fingerprint')}; this one is {sweep_name!r}, {fingerprint}). "
                    f"Refusing to mix them: use --fresh to start over or --out to write elsewhere")
        root.mkdir(parents=True, exist_ok=True)
        if not ident.is_file():
            atomic_write_text(ident, json.dumps({"sweep": sweep_name, "fingerprint": fingerprint,
                                                 "schema_version": SCHEMA_VERSION, "hrvs_ray_version": __version__,
                                                 "definition": definition}, indent=2, sort_keys=True, default=list))
        return cls(root, sweep_name, fingerprint)

    @property
    def cells_path(self) -> Path:
        return self.root / "cells.parquet"

    @property
    def nodes_path(self) -> Path:
        return self.root / "nodes.parquet"

    def steps_path(self, cluster: str, cell_id: str) -> Path:
        return self.root / "steps" / _safe(cluster) / f"{_safe(cell_id)}.parquet"

    def _cells(self) -> pa.Table:
        if self.cells_path.is_file():
            return _read(self.cells_path, CELLS_SCHEMA)   # filled: a resumed v1 folder stays whole
        return conform([], CELLS_SCHEMA)

    def finished(self) -> dict[str, str]:
        """cell_id -> status of every cell already recorded."""
        t = self._cells()
        return dict(zip(t.column("cell_id").to_pylist(), t.column("status").to_pylist()))

    def write_cell(self, cell: dict[str, Any], steps: pa.Table | None) -> None:
        """Record one finished cell: its steps file lands first, then its row (replacing an
        earlier row of the same cell, e.g. a failed attempt now retried)."""
        if cell.get("status") not in FINISHED:
            raise ValueError(f"cell status must be one of {FINISHED}, got {cell.get('status')!r}")
        extra = {"sweep": self.sweep_name, "sweep_fingerprint": self.fingerprint}
        if steps is not None and steps.num_rows:
            _atomic_write(conform(steps, STEPS_SCHEMA).replace_schema_metadata(
                _meta(STEPS_SCHEMA, extra).metadata), self.steps_path(cell["cluster"], cell["cell_id"]))
        old = self._cells()
        keep = old.filter(pa.compute.not_equal(old.column("cell_id"), cell["cell_id"])) if old.num_rows else old
        new = pa.concat_tables([conform(keep, CELLS_SCHEMA), conform([cell], CELLS_SCHEMA)])
        _atomic_write(new.replace_schema_metadata(_meta(CELLS_SCHEMA, extra).metadata), self.cells_path)

    def write_node(self, node: dict[str, Any]) -> None:
        """Add or replace one node's description (keyed by ``node``)."""
        old = pq.read_table(self.nodes_path) if self.nodes_path.is_file() else conform([], NODES_SCHEMA)
        keep = old.filter(pa.compute.not_equal(old.column("node"), node["node"])) if old.num_rows else old
        new = pa.concat_tables([conform(keep, NODES_SCHEMA), conform([node_row(node)], NODES_SCHEMA)])
        _atomic_write(new.replace_schema_metadata(_meta(NODES_SCHEMA).metadata), self.nodes_path)


@dataclass
class Results:
    """Reader side: one results folder as three tables, orphan step files dropped."""
    root: Path
    sweep: dict[str, Any]
    steps: pa.Table
    cells: pa.Table
    nodes: pa.Table


def _check_version(path: Path, schema: pa.Schema | None) -> int:
    md = (schema.metadata or {}) if schema is not None else {}
    raw = md.get(b"schema_version")
    if raw is None:
        raise ResultsError(f"{path}: no schema_version in parquet metadata: not written by hrvs-ray")
    v = int(raw)
    if v > SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version {v} is newer than this hrvs-ray understands "
                           f"({SCHEMA_VERSION}); upgrade hrvs-ray to read it")
    if v < 1:
        raise ResultsError(f"{path}: schema_version {v} is older than any this hrvs-ray can read")
    return v


def _read(path: Path, schema: pa.Schema) -> pa.Table:
    try:
        t = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise ResultsError(f"{path}: corrupt or unreadable parquet ({e})") from None
    _check_version(path, t.schema)
    return _fill_defaults(conform(t, schema))


_FILLED = ("batching", "precision", "memory_format", "checkpointing", "remedy", "micro_batches", "growth_bytes",
           "pass_px")


def _fill_defaults(t: pa.Table) -> pa.Table:
    """The one place a row without its remedy or derived memory columns gets them: schema-1
    rows predate the remedies axes (every cell ran the paper's batching, without
    checkpointing, at the precision and memory format its rows or its spec name), and a
    reader should never have to guess them again."""
    gaps = [c for c in _FILLED if c in t.column_names and t.column(c).null_count]
    if not t.num_rows or not gaps:
        return t
    df = t.to_pandas()
    if "spec_json" in df and df["precision"].isna().any():
        specs = df["spec_json"].map(lambda j: json.loads(j).get("model", {}) if isinstance(j, str) else {})
        df["precision"] = df["precision"].fillna(specs.map(lambda m: m.get("precision")))
        df["memory_format"] = df["memory_format"].fillna(specs.map(lambda m: m.get("memory_format")))
    df = df.fillna({"precision": "float32", "memory_format": "contiguous", "batching": "pad", "checkpointing": "none"})
    missing = df["remedy"].isna()
    if missing.any():
        df.loc[missing, "remedy"] = [
            Remedy(r.batching, r.precision, r.memory_format, r.checkpointing,
                   **{k: int(getattr(r, k)) for k in ("window", "micro_batch") if not pd.isna(getattr(r, k))}).label
            for r in df[missing].itertuples()]
    if "micro_batches" in df:
        df["micro_batches"] = df["micro_batches"].fillna(1)
        df["growth_bytes"] = df["growth_bytes"].fillna(df["peak_rss_bytes"] - df["rss_start_bytes"])
        df["pass_px"] = df["pass_px"].fillna(df["total_px"])
    return conform(pa.Table.from_pandas(df, preserve_index=False), t.schema)


def read_results(root: str | Path) -> Results:
    """Load a results folder for reporting. Missing, empty, corrupt or newer-schema folders
    raise ResultsError naming the folder or file."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"{root}: no such results folder")
    ident = root / "sweep.json"
    if not ident.is_file():
        raise ResultsError(f"{root}: not an hrvs-ray results folder (no sweep.json)")
    try:
        sweep = json.loads(ident.read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"{ident}: corrupt ({e})") from None
    if int(sweep.get("schema_version", 0)) > SCHEMA_VERSION:
        raise ResultsError(f"{ident}: schema_version {sweep.get('schema_version')} is newer than this "
                           f"hrvs-ray understands ({SCHEMA_VERSION}); upgrade hrvs-ray to read it")
    cells_path = root / "cells.parquet"
    if not cells_path.is_file():
        raise ResultsError(f"{root}: empty results folder (no cells.parquet: no cell has finished yet)")
    cells = _read(cells_path, CELLS_SCHEMA)
    nodes = _read(root / "nodes.parquet", NODES_SCHEMA) if (root / "nodes.parquet").is_file() \
        else conform([], NODES_SCHEMA)
    known = set(cells.column("cell_id").to_pylist())
    parts = []
    for f in sorted((root / "steps").rglob("*.parquet")) if (root / "steps").is_dir() else []:
        t = _read(f, STEPS_SCHEMA)
        if t.num_rows and t.column("cell_id")[0].as_py() in known:
            parts.append(t)
    steps = pa.concat_tables(parts) if parts else conform([], STEPS_SCHEMA)
    return Results(root, sweep, steps, cells, nodes)
