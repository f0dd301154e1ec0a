"""Sweep -> cells (the cartesian product) and metadata-only batch statistics (Table 1).

Pure: no torch, no ray, no pixels. ``hrvs-ray plan`` runs on this module alone.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .config import CounterSpec, InputSetSpec, ModelSpec, OptimizerSpec, Sweep, SweepError
from .data.batching import batch_indices, pixel_stats
from .data.shapes import METADATA_CSV, ShapeTable, read_metadata_csv, shipped_shape_table, transformed_arrays

# Main memory of one ResNet18 fp32 training step grows with the batch's total pixels: the
# paper's Table 2 gives 28.3 GB for 67.1 MP (LR&FS), 19.8 GB for 46.8 MP (MR&VS) and
# 25.7 GB for 61.5 MP (HR&VS): 418-423 bytes per pixel. We keep 430 B/px to stay on the
# safe side, plus the process, weights, gradients and Adam state.
BYTES_PER_PIXEL = {"float32": 430, "bfloat16": 260}
BASE_BYTES = 1_200_000_000


def estimate_step_bytes(total_px: int, precision: str = "float32") -> int:
    """Planned peak main memory of one training step on a batch of ``total_px`` pixels."""
    return BASE_BYTES + BYTES_PER_PIXEL[precision] * int(total_px)


@dataclass(frozen=True)
class CellSpec:
    """One deterministic training cell: one input set, one scope, one run, on one cluster."""
    sweep: str
    cluster: str
    scope: str
    input_set: InputSetSpec
    run: int
    seed: int
    warmup_steps: int
    steps: int
    model: ModelSpec
    optimizer: OptimizerSpec
    counters: CounterSpec
    cell_id: str

    @property
    def n_batches(self) -> int:
        return self.warmup_steps + self.steps

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "CellSpec":
        d = json.loads(text)
        d["input_set"]["size"] = tuple(d["input_set"]["size"])
        d["input_set"] = InputSetSpec(**d["input_set"])
        d["model"] = ModelSpec(**d["model"])
        d["optimizer"]["betas"] = tuple(d["optimizer"]["betas"])
        d["optimizer"] = OptimizerSpec(**d["optimizer"])
        d["counters"] = CounterSpec(**d["counters"])
        return CellSpec(**d)


def cell_id(cluster: str, scope: str, input_set: InputSetSpec, run: int, params: dict) -> str:
    """Readable name plus a short hash of the sorted parameters (ReFrame style)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=list).encode()).hexdigest()[:8]
    safe = lambda s: "".join(c if c.isalnum() or c in "-_" else "-" for c in s)  # noqa: E731
    return f"{safe(cluster)}.{safe(scope)}.{input_set.key}.r{run}.{digest}"


def cluster_scopes(sweep: Sweep, cluster: str) -> tuple[str, ...]:
    for c in sweep.clusters:
        if c.name == cluster and c.scopes is not None:
            return c.scopes
    return sweep.scopes


def cluster_counters(sweep: Sweep, cluster: str) -> CounterSpec:
    for c in sweep.clusters:
        if c.name == cluster and c.counters is not None:
            return c.counters
    return sweep.counters


def plan_cells(sweep: Sweep, clusters: Sequence[str]) -> list[CellSpec]:
    """Every (cluster, scope, input set, run), in a fixed order: runs outermost so an
    interrupted sweep already has one run of everything, then scope, then input set."""
    cells = []
    t = sweep.training
    for cluster in clusters:
        counters = cluster_counters(sweep, cluster)
        for run in range(t.runs):
            for scope in cluster_scopes(sweep, cluster):
                for iset in sweep.input_sets:
                    params = {"sweep": sweep.fingerprint(), "cluster": cluster, "scope": scope,
                              "input_set": asdict(iset), "run": run, "counters": asdict(counters)}
                    cells.append(CellSpec(
                        sweep=sweep.name, cluster=cluster, scope=scope, input_set=iset, run=run,
                        seed=t.seed, warmup_steps=t.warmup_steps, steps=t.steps,
                        model=sweep.model, optimizer=sweep.optimizer, counters=counters,
                        cell_id=cell_id(cluster, scope, iset, run, params)))
    return cells


def planning_shapes(sweep: Sweep) -> tuple[ShapeTable, str]:
    """Original image shapes for planning: the dataset's own metadata when it is on disk,
    else the shipped MAMe table (real shapes; scaled like the synthetic generator would)."""
    csv_path = Path(sweep.dataset.path) / METADATA_CSV
    if csv_path.is_file():
        return read_metadata_csv(csv_path).select(sweep.dataset.subset).sorted(), str(csv_path)
    table = shipped_shape_table().select(sweep.dataset.subset).sorted()
    if sweep.dataset.kind == "synthetic" and sweep.dataset.synthetic is not None:
        from .data.synthetic import draw_rows  # pure numpy, no pixels
        table = draw_rows(shipped_shape_table(), sweep.dataset.synthetic).select(sweep.dataset.subset).sorted()
        return table, "shipped MAMe shape table, drawn and scaled as the synthetic generator does"
    return table, "shipped MAMe shape table (dataset not on disk)"


def cell_peak_bytes(cell: CellSpec, heights: np.ndarray, widths: np.ndarray) -> int:
    """Planned peak memory of a cell's largest step, from original shapes alone."""
    h, w = transformed_arrays(cell.input_set, heights, widths)
    idx = batch_indices(len(h), cell.seed, cell.run, cell.input_set.batch_size, cell.n_batches)
    return estimate_step_bytes(int(pixel_stats(h, w, idx)["total"].max()), cell.model.precision)


def check_batch_sizes(sweep: Sweep, n_images: int, where: str) -> None:
    """Every input set's batch must fit in the images available (else no batch can be drawn)."""
    for iset in sweep.input_sets:
        if iset.batch_size > n_images:
            raise SweepError(sweep.source or "<sweep>", f"input_sets.{iset.name}.batch_size",
                             f"{iset.batch_size} exceeds the {n_images} images of subset "
                             f"{sweep.dataset.subset!r} in {where}")


def batch_table(sweep: Sweep, n_batches: int, shapes: ShapeTable | None = None) -> dict[str, dict]:
    """Per input set: batch size and min/avg/max informative, padding and total MP over
    ``n_batches`` seeded batches (run 0), plus the estimated memory per batch in GB."""
    if shapes is None:
        shapes, source = planning_shapes(sweep)
        check_batch_sizes(sweep, len(shapes), source)
    out: dict[str, dict] = {}
    for iset in sweep.input_sets:
        h, w = transformed_arrays(iset, shapes.heights, shapes.widths)
        idx = batch_indices(len(shapes), sweep.training.seed, 0, iset.batch_size, n_batches)
        stats = pixel_stats(h, w, idx)
        entry: dict = {"batch_size": iset.batch_size, "batches": int(idx.shape[0])}
        for k in ("informative", "padding", "total"):
            mp = stats[k] / 1e6
            entry[k] = {"min": float(mp.min()), "avg": float(mp.mean()), "max": float(mp.max())}
        mem = np.array([estimate_step_bytes(int(t), sweep.model.precision) for t in stats["total"]]) / 1e9
        entry["memory_gb"] = {"min": float(mem.min()), "avg": float(mem.mean()), "max": float(mem.max())}
        out[iset.name] = entry
    return out
