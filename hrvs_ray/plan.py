"""Sweep -> cells (the cartesian product) and metadata-only batch statistics (Table 1).

Pure: no torch, no ray, no pixels. ``hrvs-ray plan`` runs on this module alone.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import CounterSpec, InputSetSpec, ModelSpec, OptimizerSpec, Sweep, SweepError
from .data.policies import step_indices, step_pixel_stats
from .data.shape_diversity import distinct_counts, step_pass_shapes
from .memory_model import estimate_step_bytes
from .names import id_part
from .remedies import PAPER, Remedy
from .data.shapes import METADATA_CSV, ShapeTable, read_metadata_csv, shipped_shape_table, transformed_arrays

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
    remedy: Remedy = PAPER     # model.precision / memory_format always equal the remedy's
    release_heap: bool = False  # execution.release_heap: free heap handed back before each step

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
        # specs stored before the remedies axes existed ran the paper's batching
        d["remedy"] = Remedy(**d.get("remedy", {"precision": d["model"].precision,
                                                "memory_format": d["model"].memory_format}))
        return CellSpec(**d)


def cell_id(cluster: str, scope: str, input_set: InputSetSpec, run: int, params: dict,
            remedy_label: str = "") -> str:
    """Readable name plus a short hash of the sorted parameters (ReFrame style). Cells of the
    sweep's base setup keep the name they had before the remedies axes existed."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=list).encode()).hexdigest()[:8]
    middle = f".{id_part(remedy_label)}" if remedy_label else ""
    return f"{id_part(cluster)}.{id_part(scope)}.{input_set.key}{middle}.r{run}.{digest}"


def base_remedy(sweep: Sweep) -> Remedy:
    """The setup a sweep without a ``remedies:`` section runs (model.precision/format)."""
    return Remedy(precision=sweep.model.precision, memory_format=sweep.model.memory_format)


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
    """Every (cluster, run, scope, input set, remedy), in that fixed order: runs outermost so
    an interrupted sweep already has one run of everything; remedies innermost, in the
    order of ``RemediesSpec.combinations`` (batching, precision, memory format, checkpointing)."""
    cells = []
    t = sweep.training
    base = base_remedy(sweep)
    for cluster in clusters:
        counters = cluster_counters(sweep, cluster)
        for run in range(t.runs):
            for scope in cluster_scopes(sweep, cluster):
                for iset in sweep.input_sets:
                    for remedy in sweep.remedies.combinations():
                        params = {"sweep": sweep.fingerprint(), "cluster": cluster, "scope": scope,
                                  "input_set": asdict(iset), "run": run, "counters": asdict(counters)}
                        extra = remedy.id_params(base)
                        if extra:
                            params["remedy"] = extra
                        cells.append(CellSpec(
                            sweep=sweep.name, cluster=cluster, scope=scope, input_set=iset, run=run,
                            seed=t.seed, warmup_steps=t.warmup_steps, steps=t.steps,
                            model=replace(sweep.model, precision=remedy.precision,
                                          memory_format=remedy.memory_format),
                            optimizer=sweep.optimizer, counters=counters, remedy=remedy,
                            release_heap=sweep.execution.release_heap,
                            cell_id=cell_id(cluster, scope, iset, run, params, remedy.label if extra else "")))
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


def step_plan(cell: CellSpec, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """(n_batches, batch_size) indices into the sorted shape table: the images of each of
    the cell's optimizer steps under its batching policy. ``heights``/``widths`` are the
    original shapes in sorted-id order (the input set's resize is applied here)."""
    h, w = transformed_arrays(cell.input_set, heights, widths)
    return step_indices(cell.remedy, h, w, cell.seed, cell.run, cell.input_set.batch_size, cell.n_batches)


Estimator = Callable[[int, Remedy], int]   # (pixels of a pass, remedy) -> planned bytes


def cell_largest_pass(cell: CellSpec, heights: np.ndarray, widths: np.ndarray) -> int:
    """Total pixels of the largest forward/backward pass of any of the cell's steps."""
    h, w = transformed_arrays(cell.input_set, heights, widths)
    return int(step_pixel_stats(h, w, step_plan(cell, heights, widths), cell.remedy)["largest_pass"].max())


def cell_peak_bytes(cell: CellSpec, heights: np.ndarray, widths: np.ndarray,
                    estimate: Estimator = estimate_step_bytes) -> int:
    """Planned peak memory of a cell's largest step, from original shapes alone."""
    return estimate(cell_largest_pass(cell, heights, widths), cell.remedy)


def check_batch_sizes(sweep: Sweep, n_images: int, where: str) -> None:
    """Every input set's batch must fit in the images available (else no batch can be drawn)."""
    for iset in sweep.input_sets:
        if iset.batch_size > n_images:
            raise SweepError(sweep.source or "<sweep>", f"input_sets.{iset.name}.batch_size",
                             f"{iset.batch_size} exceeds the {n_images} images of subset "
                             f"{sweep.dataset.subset!r} in {where}")


# ResNet halves the input five times (stem conv, max-pool, three strided stages): a pass
# whose last feature map holds one value per channel cannot train (BatchNorm needs > 1).
RESNET_REDUCTION = 32


def check_passes(sweep: Sweep, shapes: ShapeTable, where: str) -> None:
    """Every forward/backward pass the sweep plans must be trainable: under ``accumulate`` a
    pass of one image (``micro_batch: 1``, or a batch's last micro-batch) goes through
    BatchNorm alone, so every image must then be larger than 32 px on a side after resize."""
    if "accumulate" not in sweep.remedies.batching:
        return
    mb = sweep.remedies.micro_batch
    for iset in sweep.input_sets:
        if mb > 1 and iset.batch_size % mb != 1:
            continue           # no pass of this input set holds a single image
        h, w = transformed_arrays(iset, shapes.heights, shapes.widths)
        tiny = int(((h <= RESNET_REDUCTION) & (w <= RESNET_REDUCTION)).sum())
        if tiny:
            raise SweepError(sweep.source or "<sweep>", "remedies.micro_batch",
                             f"{mb} leaves passes of one image in input set {iset.name!r} (batch "
                             f"{iset.batch_size}), and {tiny} of its images are at most {RESNET_REDUCTION}x"
                             f"{RESNET_REDUCTION} px after resize (in {where}): one such image alone leaves "
                             f"BatchNorm one value per channel; choose a micro_batch that leaves no single image")


def check_plan(sweep: Sweep, shapes: ShapeTable, where: str) -> None:
    """Everything a sweep's plan needs from the shapes it will read: batches that fit in the
    subset, passes that can train. Every caller (plan, sweep pre-flight, data check) uses this."""
    check_batch_sizes(sweep, len(shapes), where)
    check_passes(sweep, shapes, where)


def _mma(values: np.ndarray, scale: float) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64) / scale
    return {"min": float(v.min()), "avg": float(v.mean()), "max": float(v.max())}


def batch_table(sweep: Sweep, n_batches: int, shapes: ShapeTable | None = None,
                estimate: Estimator = estimate_step_bytes) -> dict[str, dict]:
    """Per input set (× batching policy when the sweep has several, × shape rounding when it
    rounds): batch size and min/avg/max informative, padding and total MP per optimizer
    step over ``n_batches`` seeded steps (run 0), the distinct pass shapes they hold, and the
    planned memory per step in GB for every precision × memory format × checkpointing of
    the sweep (``memory_gb``: the first of them)."""
    if shapes is None:
        shapes, source = planning_shapes(sweep)
        check_plan(sweep, shapes, source)
    spec = sweep.remedies
    out: dict[str, dict] = {}
    for iset in sweep.input_sets:
        h, w = transformed_arrays(iset, shapes.heights, shapes.widths)
        for batching in spec.batching:
            for rnd in spec.shape_round:
                policy = replace(spec.combinations()[0], batching=batching, shape_round=rnd)
                tags = ([batching] if len(spec.batching) > 1 else []) + \
                    ([f"round {rnd}" if rnd else "no round"] if len(spec.shape_round) > 1 or rnd else [])
                name = f"{iset.name} [{', '.join(tags)}]" if tags else iset.name
                out[name] = _policy_entry(sweep, iset, policy, h, w, n_batches, estimate)
    return out


def _policy_entry(sweep: Sweep, iset: InputSetSpec, policy: Remedy, h: np.ndarray, w: np.ndarray,
                  n_batches: int, estimate: Estimator) -> dict:
    spec = sweep.remedies
    idx = step_indices(policy, h, w, sweep.training.seed, 0, iset.batch_size, n_batches)
    stats = step_pixel_stats(h, w, idx, policy)
    passes = step_pass_shapes(h, w, idx, policy)
    entry: dict = {"input_set": iset.name, "batching": policy.batching, "shape_round": policy.shape_round,
                   "batch_size": iset.batch_size, "batches": int(idx.shape[0]),
                   "passes": sum(len(p) for p in passes), "distinct_shapes": int(distinct_counts(passes)[-1])
                   if passes else 0}
    for k in ("informative", "padding", "total"):
        entry[k] = _mma(stats[k], 1e6)
    entry["memory"] = [
        {"precision": r.precision, "memory_format": r.memory_format, "checkpointing": r.checkpointing,
         "gb": _mma([estimate(int(p), r) for p in stats["largest_pass"]], 1e9)}
        for r in spec.combinations() if (r.batching, r.kernel_cache, r.shape_round) ==
        (spec.batching[0], spec.kernel_cache[0], spec.shape_round[0])]
    entry["memory_gb"] = entry["memory"][0]["gb"]
    return entry
