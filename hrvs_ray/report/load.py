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
from ..store import ResultsError, read_results

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


@dataclass
class Merged:
    """All folders merged. ``steps`` carries the derived per-step columns of metrics.derive."""
    sources: list[Source]
    steps: pd.DataFrame
    cells: pd.DataFrame
    nodes: pd.DataFrame
    notes: list[str] = field(default_factory=list)

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


def order_input_sets(names: set[str] | list[str]) -> list[str]:
    names = set(names)
    return [n for n in PAPER_ORDER if n in names] + sorted(names - set(PAPER_ORDER))


def scope_key(scope: str) -> tuple[int, int, str]:
    """Smallest scope first: cores:N by N, then socket, then node, then anything else."""
    if scope.startswith("cores:") and scope[6:].isdigit():
        return (0, int(scope[6:]), scope)
    return ({"socket": 1, "node": 2}.get(scope, 3), 0, scope)


def scope_label(scope: str) -> str:
    """'cores:4' -> '4 cores' (the paper's wording); 'socket' and 'node' stay as they are."""
    if scope.startswith("cores:") and scope[6:].isdigit():
        n = int(scope[6:])
        return f"{n} core" if n == 1 else f"{n} cores"
    return scope


def _seed(spec_json: object) -> float:
    # The seed decides the batches; it lives only in the cell's spec, not in the steps rows.
    try:
        return float(json.loads(spec_json)["seed"])  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError):
        return float("nan")


def load(dirs: list[Path]) -> Merged:
    """Read every folder (duplicates by resolved path read once) and merge them.

    A cluster name that appears in folders of *different* sweeps is shown as
    ``cluster [sweep]`` so that their runs are never pooled as if they were one experiment.
    """
    if not dirs:
        raise ResultsError("no results folder given: name at least one results/<sweep>/ folder")
    seen: set[Path] = set()
    read = []
    for d in dirs:
        p = Path(d)
        key = p.resolve() if p.exists() else p
        if key in seen:
            continue
        seen.add(key)
        read.append(read_results(p))

    sweeps_of: dict[str, set[str]] = {}
    for r in read:
        name = str(r.sweep.get("sweep", ""))
        for c in set(r.cells.column("cluster").to_pylist()) | set(r.nodes.column("cluster").to_pylist()):
            sweeps_of.setdefault(c, set()).add(name)

    notes: list[str] = []
    sources, steps_parts, cells_parts, nodes_parts = [], [], [], []
    known_cells: set[str] = set()
    for r in read:
        name = str(r.sweep.get("sweep", ""))
        steps, cells, nodes = r.steps.to_pandas(), r.cells.to_pandas(), r.nodes.to_pandas()
        dup = set(cells["cell_id"]) & known_cells
        if dup:
            notes.append(f"{r.root}: {len(dup)} cell(s) already read from an earlier folder were ignored")
            cells = cells[~cells["cell_id"].isin(dup)]
            steps = steps[~steps["cell_id"].isin(dup)]
        known_cells |= set(cells["cell_id"])
        rename = {c: f"{c} [{name}]" for c, s in sweeps_of.items() if len(s) > 1}
        for c in sorted(rename):
            notes.append(f"cluster {c!r} appears in several sweeps; its results from {r.root} "
                         f"are shown as {rename[c]!r}")
        for df in (steps, cells, nodes):
            df["cluster"] = df["cluster"].map(lambda c: rename.get(c, c))
        seeds = dict(zip(cells["cell_id"], cells["spec_json"].map(_seed)))
        steps["seed"] = steps["cell_id"].map(seeds).astype("float64")
        steps["source"] = str(r.root)
        cells["source"] = str(r.root)
        sources.append(Source(r.root, name, str(r.sweep.get("fingerprint", "")),
                              str(r.sweep.get("schema_version", "")), str(r.sweep.get("hrvs_ray_version", "")),
                              len(cells), len(steps)))
        steps_parts.append(steps)
        cells_parts.append(cells)
        nodes_parts.append(nodes)

    steps = pd.concat(steps_parts, ignore_index=True)
    nodes = pd.concat(nodes_parts, ignore_index=True).drop_duplicates(subset=["cluster", "node"], keep="last")
    return Merged(sources, derive(steps), pd.concat(cells_parts, ignore_index=True),
                  nodes.reset_index(drop=True), notes)
