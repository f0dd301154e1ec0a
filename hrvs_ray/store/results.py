"""The results folder: layout, atomic writes, resume, reading.

Layout of ``results/<sweep>/`` (every file the tool writes there; the names are the
constants below, and nothing else writes into the folder)::

    sweep.json                      SWEEP_FILE: the sweep definition and its fingerprint
                                    (identity check); written once, when the folder is made
    plan.json                       PLAN_FILE: what the sweep's steps stand for, from the
                                    driver's one copy of the step plans (``plan.epoch.plan_record``):
                                    padding and label diversity of the sampled steps and of a
                                    full epoch per input set and batching policy; the report
                                    reads it and never the dataset. Rewritten at each (resumed)
                                    start; folders from before it have none
    steps/<cluster>/<cell_id>.parquet   one file per finished cell (steps are partitioned by
                                    cluster, then cell; each file lands by atomic rename)
    cells.parquet                   one row per cell that finished (ok | failed | skipped)
    nodes.parquet                   one row per node seen (the node-info description)
    memory_fit.json                 FIT_FILE: the memory model fitted on this folder's timed
                                    steps (``plan.memory_calibration``), written at the end of a
                                    sweep with at least one ok cell; ``plan --memory-from`` reads it

Only the driver writes. A cell counts as finished once its row is in ``cells.parquet``;
its steps file is renamed into place before that row is written, so a crash between the
two leaves at worst an orphan steps file, which readers ignore and a resume overwrites.

Pure: pyarrow only, no torch, no ray.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..fsutil import atomic_write, atomic_write_text
from ..names import path_component
from .migrate import ResultsError, check_version, upgrade
from .schema import CELLS_SCHEMA, NODES_SCHEMA, SCHEMA_VERSION, STEPS_SCHEMA, conform, node_row, with_version

FINISHED = ("ok", "failed", "skipped")
SWEEP_FILE, PLAN_FILE, FIT_FILE = "sweep.json", "plan.json", "memory_fit.json"


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
    # node -> its library baseline (write_node), added to each cell's anonymous memory
    libraries: dict[str, int] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, sweep_name: str, fingerprint: str, definition: dict, fresh: bool = False,
             plan_version: int = 1) -> ResultStore:
        """Open (or create) a results folder for this sweep. A folder holding another sweep's
        results is refused, never mixed; ``fresh`` moves nothing aside, it deletes our own
        earlier results only after checking they are ours or the folder is ours to reuse."""
        root = Path(root)
        ident = root / SWEEP_FILE
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
            elif old.get("sweep") == sweep_name and int(old.get("plan_version", 1)) != plan_version:
                raise ResultsError(
                    f"{root}: holds results of sweep {sweep_name!r} planned by plan version "
                    f"{int(old.get('plan_version', 1))}; this hrvs-ray plans it by version {plan_version}, "
                    f"which trains some steps on other images (every batching policy now trains on "
                    f"pad's images). Refusing to resume with two plans mixed: use --fresh to start "
                    f"over or --out to write elsewhere")
            elif old.get("fingerprint") != fingerprint or old.get("sweep") != sweep_name:
                raise ResultsError(
                    f"{root}: holds results of a different sweep definition ({old.get('sweep')!r}, "
                    f"fingerprint {old.get('fingerprint')}; this one is {sweep_name!r}, {fingerprint}). "
                    f"Refusing to mix them: use --fresh to start over or --out to write elsewhere")
        root.mkdir(parents=True, exist_ok=True)
        if not ident.is_file():
            atomic_write_text(ident, json.dumps({"sweep": sweep_name, "fingerprint": fingerprint,
                                                 "plan_version": plan_version, "schema_version": SCHEMA_VERSION,
                                                 "hrvs_ray_version": __version__,
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
        return dict(zip(t.column("cell_id").to_pylist(), t.column("status").to_pylist(), strict=False))

    def write_cell(self, cell: dict[str, Any], steps: pa.Table | None) -> None:
        """Record one finished cell: its steps file lands first, then its row (replacing an
        earlier row of the same cell, e.g. a failed attempt now retried)."""
        if cell.get("status") not in FINISHED:
            raise ValueError(f"cell status must be one of {FINISHED}, got {cell.get('status')!r}")
        extra = {"sweep": self.sweep_name, "sweep_fingerprint": self.fingerprint}
        if steps is not None and steps.num_rows:
            steps, cell = with_library(steps, cell, self.libraries.get(cell.get("node")))
            _atomic_write(conform(steps, STEPS_SCHEMA).replace_schema_metadata(
                with_version(STEPS_SCHEMA, extra).metadata), self.steps_path(cell["cluster"], cell["cell_id"]))
        old = self._cells()
        keep = old.filter(pa.compute.not_equal(old.column("cell_id"), cell["cell_id"])) if old.num_rows else old
        new = pa.concat_tables([conform(keep, CELLS_SCHEMA), conform([cell], CELLS_SCHEMA)])
        _atomic_write(new.replace_schema_metadata(with_version(CELLS_SCHEMA, extra).metadata), self.cells_path)

    def write_plan(self, plan: dict[str, Any]) -> None:
        """Record what the sweep's steps stand for (``PLAN_FILE``, plain JSON values)."""
        atomic_write_text(self.root / PLAN_FILE, json.dumps(plan, indent=1, sort_keys=True) + "\n")

    def write_node(self, node: dict[str, Any]) -> None:
        """Add or replace one node's description (keyed by ``node``)."""
        if isinstance(node.get("library_bytes"), int):
            self.libraries[node["node"]] = node["library_bytes"]
        old = pq.read_table(self.nodes_path) if self.nodes_path.is_file() else conform([], NODES_SCHEMA)
        keep = old.filter(pa.compute.not_equal(old.column("node"), node["node"])) if old.num_rows else old
        new = pa.concat_tables([conform(keep, NODES_SCHEMA), conform([node_row(node)], NODES_SCHEMA)])
        _atomic_write(new.replace_schema_metadata(with_version(NODES_SCHEMA).metadata), self.nodes_path)


def with_library(steps: pa.Table, cell: dict[str, Any], library: int | None) -> tuple[pa.Table, dict[str, Any]]:
    """A cell's steps and row with its node's library baseline added to their anonymous memory
    (probes.memory): ``peak_rss_bytes`` = library + ``peak_anon_bytes``, ``rss_start_bytes`` =
    library + ``anon_start_bytes``, the cell's ``baseline_rss_bytes`` = library + its anonymous
    baseline. The same figures whether the cell's process was forked or started fresh. Rows
    without an anonymous reading (or a node without a baseline) are left as the process read them."""
    t = conform(steps, STEPS_SCHEMA)
    if library is None or t.column("peak_anon_bytes").null_count == t.num_rows:
        return t, cell
    cols = {"library_bytes": pa.array([library] * t.num_rows, pa.int64())}
    for total, anon in (("peak_rss_bytes", "peak_anon_bytes"), ("rss_start_bytes", "anon_start_bytes")):
        cols[total] = pa.compute.add(t.column(anon), library)
    for name, col in cols.items():
        t = t.set_column(t.schema.get_field_index(name), name, col.cast(pa.int64()))
    anon = t.column("baseline_anon_bytes")[0].as_py()
    if anon is not None:
        cell = {**cell, "baseline_anon_bytes": anon, "library_bytes": library, "baseline_rss_bytes": library + anon}
    return t, cell


@dataclass
class Results:
    """Reader side: one results folder as three tables, orphan step files dropped."""
    root: Path
    sweep: dict[str, Any]
    steps: pa.Table
    cells: pa.Table
    nodes: pa.Table
    plan: dict[str, Any] | None = None   # PLAN_FILE; None in folders written before it existed


def _read(path: Path, schema: pa.Schema) -> pa.Table:
    try:
        t = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise ResultsError(f"{path}: corrupt or unreadable parquet ({e})") from None
    return upgrade(path, t, schema)


def read_results(root: str | Path) -> Results:
    """Load a results folder for reporting. Missing, empty, corrupt or newer-schema folders
    raise ResultsError naming the folder or file."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"{root}: no such results folder")
    ident = root / SWEEP_FILE
    if not ident.is_file():
        raise ResultsError(f"{root}: not an hrvs-ray results folder (no sweep.json)")
    try:
        sweep = json.loads(ident.read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"{ident}: corrupt ({e})") from None
    check_version(ident, sweep.get("schema_version", 1))
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
    plan = None
    if (root / PLAN_FILE).is_file():
        try:
            plan = json.loads((root / PLAN_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ResultsError(f"{root / PLAN_FILE}: corrupt ({e}); delete it: the report then recomputes the "
                               f"plan from sweep.json") from None
    return Results(root, sweep, steps, cells, nodes, plan)
