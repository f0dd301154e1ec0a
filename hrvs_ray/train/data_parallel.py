"""One rank's part of a data-parallel cell, given an initialised ``torch.distributed`` process
group (Ray Train makes it: ``cluster/ray_train.py``). Torch only, no Ray.

The cell is the single-rank cell's (``train.cell``): the same step plan, model seed,
optimizer and remedies. Each step's global batch (the 1-rank cell's step) is split by
``plan.rank_split.split_step`` under the cell's ``split``; this rank trains its positions,
padded to its own largest image (``shard``, ``balanced``) or to the step's (``uniform``). The
model is wrapped in ``DistributedDataParallel`` and DDP's gradient averaging is the one used:
each rank's mean loss is scaled by its share of the global batch times the rank count (DDP
divides by the rank count), so unequal counts give the gradient one process computes on the
whole batch.

Timing, per rank and step (after an untimed barrier): ``compute`` runs from the step's start
until the last gradient hook fires (``register_post_accumulate_grad_hook`` on every
parameter; the last one wins), plus the optimizer step; ``sync`` runs from that hook until
``backward()`` returns, which is where DDP waits for its all-reduces. Rank 0 gathers every
rank's record (``torch.distributed.gather_object``) and writes the step's one row: its
``seconds`` is the slowest rank's step.

Memory and counter probes are per process and do not add across ranks: a data-parallel
step row leaves them null.
"""
from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from ..config import DatasetSpec
from ..node.affinity import AppliedPlacement, ThreadCheck, apply_placement, pin_stragglers
from ..node.topology_types import ScopePlacement
from ..plan.cells import CellSpec
from ..plan.rank_split import split_step
from ..scopes import ranks_of
from .cell import (
    CellData,
    cell_model,
    configure_determinism,
    prepare_data,
    step_geometries,
    step_identity,
    step_input,
    step_pixels,
    sync_device,
)
from .model import build_optimizer, train_step


@dataclass(frozen=True)
class RankPin:
    """Where this rank runs and what the pin check found (see :func:`pin_rank`)."""
    rank: int
    node: str
    hostname: str
    pid: int
    cpus: tuple[int, ...]
    threads: int                     # torch's intra-op threads
    numa_binding: str
    pinned: str = ""                 # the thread check after the process group and the model exist

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "node": self.node, "hostname": self.hostname, "pid": self.pid,
                "cpus": list(self.cpus), "threads": self.threads, "numa_binding": self.numa_binding,
                "pinned": self.pinned}


@dataclass(frozen=True)
class RankRecord:
    """One rank's part of one step, sent to rank 0."""
    compute: float          # step start -> last gradient hook, plus the optimizer step
    sync: float             # last gradient hook -> backward() returned (DDP's all-reduce wait)
    wall: float             # step start -> optimizer step done
    rank_px: int            # pixels as trained, padding included, over its passes
    positions: tuple[int, ...]
    loss: float             # this rank's mean loss over its images (before the share scale)
    data_seconds: float
    fingerprint: str


@dataclass
class RankResult:
    """What a rank returns: rows and every rank's pin only on rank 0."""
    pins: list[dict[str, Any]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    prepare_seconds: float = 0.0
    images_decoded: int = 0
    images_cached: int = 0
    torch_version: str = ""
    hrvs_ray_version: str = ""
    python_version: str = ""
    data_parallel: dict[str, Any] = field(default_factory=dict)   # the cell row's data-parallel columns


def backend_version(backend: str) -> str:
    """NCCL's version for nccl; torch's for gloo, which ships inside torch."""
    if backend == "nccl":
        return ".".join(map(str, torch.cuda.nccl.version()))
    return torch.__version__


def summarise(result: RankResult, ray_train_version: str) -> RankResult:
    """Rank 0's result with the cell's own facts: versions, backend, every rank's layout.
    Call while the process group exists."""
    import json
    import platform

    from .. import __version__

    backend = str(dist.get_backend())
    result.torch_version, result.hrvs_ray_version = torch.__version__, __version__
    result.python_version = platform.python_version()
    result.data_parallel = {"ranks": len(result.pins), "dp_backend": backend,
                            "dp_backend_version": backend_version(backend),
                            "ray_train_version": ray_train_version, "rank_layout": json.dumps(result.pins)}
    return result


def pin_rank(placement: ScopePlacement) -> AppliedPlacement:
    """Pin every thread of this process to the rank's CPU set, set torch's thread count to
    its size. Call before the first torch operation: torch's OpenMP pool starts on first use
    and its threads inherit the mask of the thread that starts them."""
    applied = apply_placement(placement)
    torch.set_num_threads(applied.threads)
    return applied


class GradClock:
    """The time the last gradient hook of a backward fired (one hook per parameter)."""

    def __init__(self, params: Sequence[torch.nn.Parameter]) -> None:
        self.last: float | None = None
        self.handles = [p.register_post_accumulate_grad_hook(self._fired) for p in params if p.requires_grad]

    def _fired(self, _: torch.Tensor) -> None:
        self.last = time.perf_counter()

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def rank_pass_shape(spec: CellSpec, ids: Sequence[str], shapes: dict[str, tuple[int, int]]) -> tuple[int, int] | None:
    """What every rank pads to under ``uniform``: the step's largest image (rounded up
    under ``shape_round``); None under ``shard`` and ``balanced`` (each pads its own)."""
    if spec.remedy.split != "uniform":
        return None
    g = step_geometries(spec, ids, shapes)
    return max(x.height for x in g), max(x.width for x in g)


def assign(spec: CellSpec, ids: Sequence[str], shapes: dict[str, tuple[int, int]], ranks: int) -> list[list[int]]:
    """The positions of the step each rank trains (``split_step`` on the shapes as trained)."""
    assignment = split_step([shapes[i] for i in ids], ranks, spec.remedy.split, spec.remedy.shape_round)
    if any(not a for a in assignment):
        raise ValueError(f"a step of {len(ids)} images cannot give each of {ranks} ranks an image "
                         f"(split {spec.remedy.split}); raise the batch size or lower the rank count")
    return assignment


def loss_scale(count: int, total: int, ranks: int) -> float:
    """What a rank's mean loss over its ``count`` of the step's ``total`` images is multiplied
    by: its share of the global batch, times the rank count that DDP's averaging divides by.
    Summed over ranks the gradients are then those of the global batch's mean loss."""
    return count / total * ranks


def rank_ids(ids: Sequence[str], positions: Sequence[int]) -> list[str]:
    return [ids[p] for p in positions]


def run_rank(spec: CellSpec, dataset_spec: DatasetSpec, node: str, local_rank: int,
             applied: AppliedPlacement) -> RankResult:
    """Run this rank's part of ``spec``. The process is placed (:func:`pin_rank`) and the
    default process group is initialised. Returns the step rows on rank 0."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if world != ranks_of(spec.scope):
        raise ValueError(f"scope {spec.scope} wants {ranks_of(spec.scope)} ranks, the process group has {world}")
    if spec.remedy.compile != "eager":
        raise ValueError("data-parallel cells run eager only (compile is a single-rank remedy)")
    device = spec.model.device
    configure_determinism(device)
    data = _prepare(spec, dataset_spec, local_rank, applied)
    model = cell_model(spec)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = build_optimizer(spec.optimizer, model)
    clock = GradClock(list(model.parameters()))
    # gloo's threads exist now (the process group's and DDP's): every thread must be inside the set
    check = pin_stragglers(applied.cpus)
    pin = RankPin(rank, node, socket.gethostname(), os.getpid(), applied.cpus, torch.get_num_threads(),
                  applied.numa_binding, check.text())
    pins = _gather(pin.to_dict())
    cores = sum(len(p["cpus"]) for p in pins) if pins else 0
    rows = []
    try:
        for step, ids in enumerate(data.batches):
            record, assignment = _rank_step(spec, ddp, optimizer, clock, data, ids, rank, world)
            got = _gather(record)
            if rank == 0:
                rows.append(_row(spec, node, cores, step, ids, assignment, got, data.shapes))
        # a straggler thread started mid-cell (gloo starts some lazily) is recorded too
        late: ThreadCheck = pin_stragglers(applied.cpus)
    finally:
        clock.close()
    if late.outside:
        pin = RankPin(**{**pin.__dict__, "pinned": f"{pin.pinned}; after the steps: {late.text()}"})
    pins = _gather(pin.to_dict())
    return RankResult(pins if rank == 0 else [], rows, data.seconds, data.stats.decoded, data.stats.hits)


def _prepare(spec: CellSpec, dataset_spec: DatasetSpec, local_rank: int, applied: AppliedPlacement) -> CellData:
    """Every rank reads the whole step plan's images. The first rank of each node prepares
    them (decoding into the node's cache), the others then find them cached: ranks of a node
    never write the same cache file at once."""
    if local_rank != 0:
        dist.barrier()
    data = prepare_data(spec, dataset_spec, len(applied.cpus))
    if local_rank == 0:
        dist.barrier()
    return data


def _rank_step(spec: CellSpec, ddp: torch.nn.parallel.DistributedDataParallel, optimizer: torch.optim.Optimizer,
               clock: GradClock, data: CellData, ids: Sequence[str], rank: int,
               world: int) -> tuple[RankRecord, list[list[int]]]:
    assignment = assign(spec, ids, data.shapes, world)
    mine = assignment[rank]
    batch = step_input(spec, rank_ids(ids, mine), data.dataset, data.prepared, data.shapes,
                       rank_pass_shape(spec, ids, data.shapes))
    scale = loss_scale(len(mine), len(ids), world)
    dist.barrier()            # untimed: every rank starts the step together
    clock.last = None
    marks: list[float] = []
    t0 = time.perf_counter()
    loss = train_step(ddp, optimizer, batch.passes, spec.remedy.precision, scale, ddp.no_sync, marks)
    sync_device(spec.model.device)
    t_end = time.perf_counter()
    backward_done = marks[0]
    hook = clock.last if clock.last is not None else backward_done
    record = RankRecord(compute=(hook - t0) + (t_end - backward_done), sync=backward_done - hook, wall=t_end - t0,
                        rank_px=sum(g.total_px for g in batch.geometries), positions=tuple(mine),
                        loss=float(loss.item()), data_seconds=batch.data_seconds, fingerprint=batch.fingerprint)
    return record, assignment


def _gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` on rank 0 (in rank order); [] on the others."""
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out or []


def _row(spec: CellSpec, node: str, cores: int, step: int, ids: Sequence[str], assignment: list[list[int]],
         got: list[RankRecord], shapes: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """The step's one row: identity and pixel columns over the whole global batch (every
    rank's passes as trained, which rank 0 recomputes from the plan: geometry is pure), the
    global batch's mean loss, and the per-rank lists."""
    n = len(ids)
    pad_to = rank_pass_shape(spec, ids, shapes)
    geoms = [g for a in assignment for g in step_geometries(spec, rank_ids(ids, a), shapes, pad_to)]
    fingerprint = hashlib.blake2b("|".join(r.fingerprint for r in got).encode(), digest_size=16).hexdigest()
    image_rank = [0] * n
    for r, positions in enumerate(assignment):
        for p in positions:
            image_rank[p] = r
    pixels = step_pixels(spec, geoms, fingerprint)
    # the step's order, as the single-rank cell's (pad and bucket train the step as one pass)
    pixels["image_ids"] = list(ids)
    return {"seconds": max(r.wall for r in got), "data_seconds": max(r.data_seconds for r in got),
            "loss": sum(len(a) / n * r.loss for a, r in zip(assignment, got, strict=True)),
            **step_identity(spec, node, cores, step), **pixels, "replay": False,
            "ranks": len(got), "rank_compute_seconds": [r.compute for r in got],
            "rank_sync_seconds": [r.sync for r in got], "rank_px": [r.rank_px for r in got],
            "image_rank": image_rank}
