"""Read one or more results folders and merge them into one set of pandas frames.

Pure: pyarrow/pandas only (no torch, no ray). Every folder goes through
``hrvs_ray.store.read_results``, so a missing, empty, corrupt or newer-schema folder stops
the report with a ResultsError naming it, before anything is rendered.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..metrics import derive
from ..remedy_axes import (
    AXES,
    BATCHING,
    CHECKPOINTING,
    MEMORY_FORMAT,
    OPT_IN_AXES,
    OPT_IN_DEFAULTS,
    PAPER,
    PRECISION,
)
from ..scopes import scope_key, scope_label
from ..store import ResultsError, read_results

__all__ = ["Merged", "Source", "load", "order_input_sets", "scope_key", "scope_label", "PAPER_ORDER"]

# The paper's three input sets come first, in the paper's order; any other name follows
# alphabetically. The order fixes each set's colour, so it must not depend on which
# folders happen to be merged.
PAPER_ORDER = ("LR&FS", "MR&VS", "HR&VS")


@dataclass
class Source:
    """One results folder as it was read (for the provenance section)."""
    path: Path
    sweep: str
    fingerprint: str
    schema_version: str
    hrvs_ray_version: str
    cells: int
    step_rows: int
    definition: dict = field(default_factory=dict)   # sweep.json's definition, as stored
    plan: dict | None = None                         # plan.json (store.PLAN_FILE), None before it existed


@dataclass
class Merged:
    """All folders merged. ``steps`` carries the derived per-step columns of metrics.derive.

    ``reference`` is the remedy label the paper's sections (summary, figures, Tables 1-2)
    show: the paper's setup wherever the results hold it, so a remedies sweep never pools
    bfloat16 with float32 steps in a table meant to reproduce the paper."""
    sources: list[Source]
    steps: pd.DataFrame
    cells: pd.DataFrame
    nodes: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    reference: str = PAPER.label
    # every folder's node rows with their ``source`` (``nodes`` keeps one row per cluster and
    # node name, but two runs may reuse a name for different machines: the memory check cannot)
    source_nodes: pd.DataFrame | None = None

    @property
    def input_sets(self) -> list[str]:
        names = set(self.steps["input_set"].dropna()) | set(self.cells["input_set"].dropna())
        return order_input_sets(names)

    @property
    def scopes(self) -> list[str]:
        names = set(self.steps["scope"].dropna()) | set(self.cells["scope"].dropna())
        return sorted(names, key=scope_key)

    @property
    def clusters(self) -> list[str]:
        return sorted(set(self.steps["cluster"].dropna()) | set(self.cells["cluster"].dropna())
                      | set(self.nodes["cluster"].dropna()))

    @property
    def remedies(self) -> list[str]:
        """Every remedy label in the results, the paper's first, then in the axes' order."""
        return remedy_order(pd.concat([self.steps[list(REMEDY_COLS)], self.cells[list(REMEDY_COLS)]]))

    @property
    def ref_steps(self) -> pd.DataFrame:
        return self.steps[self.steps["remedy"] == self.reference]

    @property
    def ref_cells(self) -> pd.DataFrame:
        return self.cells[self.cells["remedy"] == self.reference]


# The remedy columns the report reads (the store fills them for every schema version).
REMEDY_COLS = ("remedy",) + AXES + OPT_IN_AXES
_RANK = {a: {v: i for i, v in enumerate(vals)} for a, vals in
         zip(AXES, (BATCHING, PRECISION, MEMORY_FORMAT, CHECKPOINTING), strict=False)}


def remedy_order(rows: pd.DataFrame) -> list[str]:
    """Distinct labels of ``rows`` (columns REMEDY_COLS): the paper's setup first, then in
    the sweep's product order (batching, precision, memory format, checkpointing)."""
    rows = rows.dropna(subset=["remedy"]).drop_duplicates(subset=["remedy"])
    key = {r["remedy"]: (r["remedy"] != PAPER.label, *(_RANK[a].get(r[a], 99) for a in AXES), r["remedy"])
           for _, r in rows.iterrows()}
    return sorted(key, key=key.get)


def reference_remedy(steps: pd.DataFrame) -> str:
    """The paper's setup when any step ran it; else the remedy with most steps (first in order)."""
    counts = steps["remedy"].value_counts()
    if PAPER.label in counts.index or counts.empty:
        return PAPER.label
    return max(remedy_order(steps[list(REMEDY_COLS)]), key=lambda r: counts.get(r, 0))


def order_input_sets(names: set[str] | list[str]) -> list[str]:
    names = set(names)
    return [n for n in PAPER_ORDER if n in names] + sorted(names - set(PAPER_ORDER))


def _seed(spec_json: object) -> float:
    # The seed decides the batches; it lives only in the cell's spec, not in the steps rows.
    try:
        return float(json.loads(spec_json)["seed"])  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError):
        return float("nan")


def _read_each(dirs: list[Path]) -> list:
    """Every folder once (by resolved path), read and checked by hrvs_ray.store."""
    if not dirs:
        raise ResultsError("no results folder given: name at least one results/<sweep>/ folder")
    seen: set[Path] = set()
    read = []
    for d in dirs:
        p = Path(d)
        key = p.resolve() if p.exists() else p
        if key not in seen:
            seen.add(key)
            read.append(read_results(p))
    return read


def load(dirs: list[Path]) -> Merged:
    """Read every folder (duplicates by resolved path read once) and merge them.

    A cluster name that appears in folders of *different* sweeps is shown as
    ``cluster [sweep]`` so that their runs are never pooled as if they were one experiment.
    """
    read = _read_each(dirs)
    sweeps_of: dict[str, set[str]] = {}
    for r in read:
        name = str(r.sweep.get("sweep", ""))
        for c in set(r.cells.column("cluster").to_pylist()) | set(r.nodes.column("cluster").to_pylist()):
            sweeps_of.setdefault(c, set()).add(name)
    shared = {c for c, s in sweeps_of.items() if len(s) > 1}

    notes: list[str] = []
    sources, steps_parts, cells_parts, nodes_parts = [], [], [], []
    known_cells: set[str] = set()
    for r in read:
        name = str(r.sweep.get("sweep", ""))
        steps, cells, nodes = r.steps.to_pandas(), r.cells.to_pandas(), r.nodes.to_pandas()
        for df in (steps, cells):   # an opt-in axis its schema has no column for ran at its default
            for axis in OPT_IN_AXES:
                if axis not in df.columns:
                    df[axis] = OPT_IN_DEFAULTS[axis]
        dup = set(cells["cell_id"]) & known_cells
        if dup:
            notes.append(f"{r.root}: {len(dup)} cell(s) already read from an earlier folder were ignored")
            cells = cells[~cells["cell_id"].isin(dup)]
            steps = steps[~steps["cell_id"].isin(dup)]
        known_cells |= set(cells["cell_id"])
        mine = {c: f"{c} [{name}]" for c in shared}
        notes += [f"cluster {c!r} appears in several sweeps; its results from {r.root} are shown as {mine[c]!r}"
                  for c in sorted(mine) if c in set(cells["cluster"]) | set(nodes["cluster"])]
        for df in (steps, cells, nodes):
            df["cluster"] = df["cluster"].map(lambda c, mine=mine: mine.get(c, c))
        seeds = dict(zip(cells["cell_id"], cells["spec_json"].map(_seed), strict=False))
        steps["seed"] = steps["cell_id"].map(seeds).astype("float64")
        steps["source"] = cells["source"] = nodes["source"] = str(r.root)
        sources.append(Source(r.root, name, str(r.sweep.get("fingerprint", "")),
                              str(r.sweep.get("schema_version", "")), str(r.sweep.get("hrvs_ray_version", "")),
                              len(cells), len(steps), r.sweep.get("definition") or {}, r.plan))
        steps_parts.append(steps)
        cells_parts.append(cells)
        nodes_parts.append(nodes)
    # remedy columns and derived memory columns come filled from hrvs_ray.store
    steps = pd.concat(steps_parts, ignore_index=True)
    cells = pd.concat(cells_parts, ignore_index=True)
    every_node = pd.concat(nodes_parts, ignore_index=True)
    nodes = every_node.drop_duplicates(subset=["cluster", "node"], keep="last").drop(columns="source")
    return Merged(sources, derive(steps), cells, nodes.reset_index(drop=True), notes, reference_remedy(steps),
                  every_node)
