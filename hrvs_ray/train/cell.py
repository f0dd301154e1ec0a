"""One deterministic training cell: prepare its batches (untimed), then warm-up and timed
steps, each probed for time, memory, counters and FLOPs. Returns the steps as Arrow rows.

The process must already be placed (CPU set, thread count, memory binding) and its
counters opened before torch starts its thread pool: that is ``cluster.actors``' job.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from ..config import DatasetSpec
from ..data.batching import batch_order, derived_seed, geometry
from ..data.inputs import PreparedSet
from ..data.mame import open_dataset
from ..plan import CellSpec
from ..probes import memory
from ..probes.flops import step_flops
from ..store import STEPS_SCHEMA, conform
from .collate import collate
from .model import build_model, build_optimizer, train_step

MODEL_SEED = 0  # purpose tags for derived_seed


@dataclass
class CellResult:
    steps: pa.Table
    prepare_seconds: float
    images_decoded: int      # originals decoded for this cell (0 once the input set is cached)
    images_cached: int


def configure_determinism(device: str) -> None:
    """Same cell, same machine, same thread count -> bitwise the same losses."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if device == "cuda":
        torch.use_deterministic_algorithms(True, warn_only=True)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_cell(spec: CellSpec, dataset_spec: DatasetSpec, node: str, cores: int, counters: Any) -> CellResult:
    """Run ``spec`` in this (already placed) process. ``counters`` is an opened
    probes.counters object (begin()/end() around each timed step)."""
    device = spec.model.device
    configure_determinism(device)
    t_prep = time.perf_counter()
    dataset = open_dataset(dataset_spec)
    prepared = PreparedSet(dataset, spec.input_set, Path(dataset_spec.cache))
    batches = batch_order(dataset.table.ids, spec.seed, spec.run, spec.input_set.batch_size, spec.n_batches)
    stats = prepared.prepare(sorted({i for b in batches for i in b}), workers=max(1, cores))
    shapes = {i: prepared.shape(i) for b in batches for i in b}
    prepare_seconds = time.perf_counter() - t_prep

    model = build_model(spec.model, derived_seed(spec.seed, spec.run, MODEL_SEED))
    model.train()
    optimizer = build_optimizer(spec.optimizer, model)

    rows = []
    buf = None
    for step, ids in enumerate(batches):
        t0 = time.perf_counter()
        geom = geometry(ids, shapes)
        buf, fingerprint = collate(geom, [prepared.get(i) for i in ids], buf, spec.model.memory_format)
        x = buf.to(device, non_blocking=False)
        y = torch.tensor([dataset.label(i) for i in ids], dtype=torch.long, device=device)
        _sync(device)
        data_seconds = time.perf_counter() - t0

        # if the kernel refuses the reset, the peak is the process's so far, and we say so
        peak_scope = "step" if memory.reset_peak_rss() else "process (clear_refs refused: peak since process start)"
        rss_start = memory.rss_bytes()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        counters.begin()
        t1 = time.perf_counter()
        loss = train_step(model, optimizer, x, y, spec.model.precision)
        _sync(device)
        seconds = time.perf_counter() - t1
        sample = counters.end()
        # VmHWM is folded from per-thread RSS counters lazily (up to ~200 KiB behind), so
        # the step's peak is at least what RSS was when it started or is now.
        peak = max(memory.peak_rss_bytes(), rss_start, memory.rss_bytes())
        device_peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None

        rows.append({
            "sweep": spec.sweep, "cell_id": spec.cell_id, "cluster": spec.cluster, "node": node,
            "scope": spec.scope, "cores": cores, "input_set": spec.input_set.name,
            "batch_size": spec.input_set.batch_size, "run": spec.run, "step": step,
            "warmup": step < spec.warmup_steps, "batch_fingerprint": fingerprint,
            "batch_height": geom.height, "batch_width": geom.width,
            "informative_px": geom.informative_px, "padding_px": geom.padding_px, "total_px": geom.total_px,
            "seconds": seconds, "data_seconds": data_seconds, "loss": float(loss.item()),
            "rss_start_bytes": rss_start, "peak_rss_bytes": peak, "peak_rss_scope": peak_scope, "device_peak_bytes": device_peak,
            "flops": step_flops(spec.model.arch, spec.model.num_classes, (geom.batch_size, 3, geom.height, geom.width)),
            "precision": spec.model.precision, "memory_format": spec.model.memory_format, "device": device,
            **sample,
        })
        del x, y, loss
    return CellResult(conform(rows, STEPS_SCHEMA), prepare_seconds, stats.decoded, stats.hits)

