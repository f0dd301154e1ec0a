"""One deterministic training cell: prepare its batches (untimed), then warm-up and timed
steps, each probed for time, memory, counters and FLOPs. Returns the steps as Arrow rows.

The process must already be placed (CPU set, thread count, memory binding) and its
counters opened before torch starts its thread pool: that is ``cluster.cell_process``' job.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import torch

from ..config import DatasetSpec
from ..data.inputs import PreparedSet
from ..data.mame import Dataset, open_dataset
from ..plan.cells import CellSpec
from ..plan.padding import BatchGeometry, geometry
from ..plan.policies import micro_slices
from ..plan.seeded_order import derived_seed
from ..plan.shape_diversity import ShapeCounter
from ..plan.step_plans import StepPlans
from ..probes import memory
from ..probes.flops import step_flops
from ..probes.steal import cpu_use, read_cpu_ticks
from ..store import STEPS_SCHEMA, conform
from .collate import collate
from .model import build_model, build_optimizer, train_step

if TYPE_CHECKING:
    from .compiling import CompileProbe

MODEL_SEED = 0  # purpose tags for derived_seed


@dataclass
class CellResult:
    steps: pa.Table
    prepare_seconds: float
    images_decoded: int      # originals decoded for this cell (0 once the input set is cached)
    images_cached: int
    baseline_rss_bytes: int  # after imports, model and optimizer state, before the first batch
    # (this process's RSS: lower in a fork, see probes.memory; the steps carry its anonymous
    # part, ``baseline_anon_bytes``, which the store adds to the node's library baseline)
    compiler_version: str | None = None    # compiled cells: the C++ compiler Inductor ran
    compile_cache_state: str | None = None  # compiled cells: empty | filled (N files) at the start


@dataclass
class StepInput:
    """One optimizer step's data, collated before the clock starts."""
    passes: list[tuple[torch.Tensor, torch.Tensor]]
    geometries: list[BatchGeometry]
    fingerprint: str
    data_seconds: float


def configure_determinism(device: str) -> None:
    """Same cell, same machine, same thread count -> bitwise the same losses."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if device == "cuda":
        torch.use_deterministic_algorithms(True, warn_only=True)


def sync_device(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def cell_batches(spec: CellSpec, dataset: Dataset) -> list[tuple[str, ...]]:
    """The image ids of each optimizer step: the plan the driver made once and sent with the
    spec (``CellSpec.batches``). A cell run outside a sweep (a test, a benchmark) arrives
    unplanned and is planned here, from the same pure plan ``hrvs-ray plan`` uses."""
    if spec.batches:
        return list(spec.batches)
    table = dataset.table.sorted()
    return list(StepPlans(table).batches(spec))


def step_geometries(spec: CellSpec, ids: Sequence[str], shapes: dict[str, tuple[int, int]],
                    pad_to: tuple[int, int] | None = None) -> list[BatchGeometry]:
    """Each pass's geometry (one pass unless ``accumulate``), padded to its own largest image
    (rounded up under ``shape_round``), or to at least ``pad_to``."""
    return [geometry(list(ids[part]), shapes, spec.remedy.shape_round, pad_to)
            for part in micro_slices(len(ids), spec.remedy)]


def step_input(spec: CellSpec, ids: Sequence[str], dataset: Dataset, prepared: PreparedSet,
               shapes: dict[str, tuple[int, int]], pad_to: tuple[int, int] | None = None) -> StepInput:
    """Collate every pass of one step (:func:`step_geometries`). With one pass the fingerprint
    is the paper's batch fingerprint."""
    t0 = time.perf_counter()
    device = spec.model.device
    passes, geoms, prints = [], [], []
    for geom in step_geometries(spec, ids, shapes, pad_to):
        part_ids = list(geom.ids)
        buf, fingerprint = collate(geom, [prepared.get(i) for i in part_ids], None, spec.remedy.memory_format)
        y = torch.tensor([dataset.label(i) for i in part_ids], dtype=torch.long, device=device)
        passes.append((buf.to(device, non_blocking=False), y))
        geoms.append(geom)
        prints.append(fingerprint)
    sync_device(device)
    fingerprint = prints[0] if len(prints) == 1 else hashlib.blake2b(
        "|".join(prints).encode(), digest_size=16).hexdigest()
    return StepInput(passes, geoms, fingerprint, time.perf_counter() - t0)


@dataclass
class CellData:
    """A cell's planned batches and their prepared images (untimed)."""
    dataset: Dataset
    prepared: PreparedSet
    batches: list[tuple[str, ...]]
    shapes: dict[str, tuple[int, int]]      # as trained (after the input set's resize)
    stats: Any                              # PreparedSet.prepare's: decoded / cached counts
    seconds: float


def prepare_data(spec: CellSpec, dataset_spec: DatasetSpec, cores: int) -> CellData:
    """Open the dataset, take the cell's step plan, make sure every image of it is prepared."""
    t_prep = time.perf_counter()
    dataset = open_dataset(dataset_spec)
    prepared = PreparedSet(dataset, spec.input_set, Path(dataset_spec.cache))
    batches = cell_batches(spec, dataset)
    stats = prepared.prepare(sorted({i for b in batches for i in b}), workers=max(1, cores))
    shapes = {i: prepared.shape(i) for b in batches for i in b}
    return CellData(dataset, prepared, batches, shapes, stats, time.perf_counter() - t_prep)


def cell_model(spec: CellSpec) -> torch.nn.Module:
    """The cell's model, freshly initialised from its seed and run, in training mode: the
    same weights for every scope, rank count and split of the cell."""
    model = build_model(spec.model, derived_seed(spec.seed, spec.run, MODEL_SEED), spec.remedy.checkpointing,
                        spec.remedy.memory_format)
    return model.train()


def run_cell(spec: CellSpec, dataset_spec: DatasetSpec, node: str, cores: int, counters: Any) -> CellResult:
    """Run ``spec`` in this (already placed) process. ``counters`` is an opened
    probes.counters object (begin()/end() around each timed step)."""
    device = spec.model.device
    configure_determinism(device)
    data = prepare_data(spec, dataset_spec, cores)
    dataset, prepared, batches, shapes = data.dataset, data.prepared, data.batches, data.shapes
    stats, prepare_seconds = data.stats, data.seconds

    model = cell_model(spec)
    optimizer = build_optimizer(spec.optimizer, model)   # on the eager module's parameters: same maths
    if spec.remedy.compile == "eager":
        baseline = memory.status_bytes()
        rows = _train(spec, model, optimizer, batches, dataset, prepared, shapes, node, cores, counters, None,
                      baseline["RssAnon"])
        return CellResult(conform(rows, STEPS_SCHEMA), prepare_seconds, stats.decoded, stats.hits, baseline["VmRSS"])
    # imported here: Dynamo takes a second or two to import, which eager cells never pay
    from .compiling import CompileProbe, compile_model, compiler_version, open_caches

    caches = open_caches(spec.remedy, spec.sweep, device)
    try:
        probe = CompileProbe()
        forward = compile_model(model, spec.remedy, probe)
        baseline = memory.status_bytes()
        rows = _train(spec, forward, optimizer, batches, dataset, prepared, shapes, node, cores, counters, probe,
                      baseline["RssAnon"])
    finally:
        caches.close()
    return CellResult(conform(rows, STEPS_SCHEMA), prepare_seconds, stats.decoded, stats.hits, baseline["VmRSS"],
                      compiler_version(device), caches.state)


def _train(spec: CellSpec, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           batches: list[tuple[str, ...]], dataset: Dataset, prepared: PreparedSet,
           shapes: dict[str, tuple[int, int]], node: str, cores: int, counters: Any,
           probe: CompileProbe | None, baseline_anon: int) -> list[dict[str, Any]]:
    """The planned steps, then (``spec.replay``) the timed steps' batches once more as replay
    rows, numbered on after the planned steps: the same images for every compile value, so
    steady-state figures of a compiled cell and of eager pair on the same batches.
    ``baseline_anon``: the process's anonymous memory before the first batch (every row)."""
    rows = []
    seen = ShapeCounter()   # warm-up steps count: their kernels are cached like any other's
    replayed = batches[spec.warmup_steps:] if spec.replay else []
    for step, ids in enumerate([*batches, *replayed]):
        data = step_input(spec, ids, dataset, prepared, shapes)
        distinct, new = seen.see((g.batch_size, g.height, g.width) for g in data.geometries)
        if probe is not None:
            probe.begin()
        row = _timed_step(spec, model, optimizer, data, counters)
        if probe is not None:
            row |= probe.end()
        elif spec.replay:   # an eager cell of a compiling sweep: nothing compiled, by construction
            row |= {"compiles": 0, "compile_seconds": 0.0, "recompile_limit_hit": False, "ran_eager": True,
                    "graph_breaks": 0}
        row["replay"] = step >= len(batches)
        rows.append(row | step_identity(spec, node, cores, step) | step_pixels(spec, data.geometries, data.fingerprint)
                    | {"distinct_shapes_seen": distinct, "new_shape": new, "baseline_anon_bytes": baseline_anon})
        del data
    return rows


def _timed_step(spec: CellSpec, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                data: StepInput, counters: Any) -> dict[str, Any]:
    device = spec.model.device
    released = spec.release_heap and memory.release_free_heap()   # untimed; see ExecutionSpec
    # if the kernel refuses the reset, the peak is the process's so far, and we say so
    peak_scope = (("step, free heap released first" if released else "step") if memory.reset_peak_rss()
                  else "process (clear_refs refused: peak since process start)")
    mem = memory.StepMemory.begin()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cpus = sorted(os.sched_getaffinity(0))
    cpu0 = read_cpu_ticks(cpus)
    own0 = time.process_time()
    counters.begin()
    t1 = time.perf_counter()
    loss = train_step(model, optimizer, data.passes, spec.remedy.precision)
    sync_device(device)
    seconds = time.perf_counter() - t1
    sample = counters.end()
    own = time.process_time() - own0
    cpu1 = read_cpu_ticks(cpus)
    # the node's library baseline is added by the store (it is the node's, not the process's)
    return {"seconds": seconds, "data_seconds": data.data_seconds, "loss": float(loss.item()),
            **mem.end(), "peak_rss_scope": peak_scope,
            "device_peak_bytes": int(torch.cuda.max_memory_allocated()) if device == "cuda" else None,
            **cpu_use(cpu0, cpu1, own), **sample}


def step_identity(spec: CellSpec, node: str, cores: int, step: int) -> dict[str, Any]:
    r = spec.remedy
    return {"sweep": spec.sweep, "cell_id": spec.cell_id, "cluster": spec.cluster, "node": node,
            "scope": spec.scope, "cores": cores, "input_set": spec.input_set.name,
            "batch_size": spec.input_set.batch_size, "run": spec.run, "step": step,
            "warmup": step < spec.warmup_steps, "device": spec.model.device, "ranks": 1, **r.to_row()}


def step_pixels(spec: CellSpec, g: Sequence[BatchGeometry], fingerprint: str) -> dict[str, Any]:
    """Pixel accounting summed over the step's passes; the batch shape is the largest pass's.
    FLOPs of a ResNet scale exactly with the images of a pass, so each distinct (H, W) is
    counted once on meta tensors and multiplied; counted on two images, because BatchNorm
    refuses a single image whose last feature map is 1x1 even on meta tensors."""
    flops = sum(step_flops(spec.model.arch, spec.model.num_classes, (2, 3, x.height, x.width)) // 2 * x.batch_size
                for x in g)
    return {"batch_fingerprint": fingerprint, "micro_batches": len(g),
            "batch_height": max(x.height for x in g), "batch_width": max(x.width for x in g),
            "informative_px": sum(x.informative_px for x in g), "padding_px": sum(x.padding_px for x in g),
            "total_px": sum(x.total_px for x in g), "pass_px": max(x.total_px for x in g), "flops": flops,
            "image_ids": [i for x in g for i in x.ids]}   # pass order: what anyone can re-check
