"""A data-parallel cell on Ray Train: ``TorchTrainer`` with one worker per rank, DDP over
gloo (CPU) or NCCL (CUDA). With ``ray_io`` and ``auth`` the only modules that import Ray.

Placement. The driver chooses the cell's nodes (``dp_dispatch``); each worker is held to its
node by a per-worker label selector on Ray's own node-id label, inside one placement group
(``STRICT_SPREAD`` for ``N*node``: one rank per node; ``STRICT_PACK`` for ``N*cores:k`` and
``N*socket``: every rank on one node). Each worker books, as its bundle, its node's CPUs
divided by the ranks there (``execution.exclusive``, the default), so the cell holds every
node it touches and Ray places nothing beside its ranks; otherwise its rank's cores. The
task that drives the trainer books no CPU (``num_cpus=0``), nor does Ray Train's controller:
booking one would take a core from the ranks.

Each worker finds its CPU set from the driver's placement (the node probe's
``rank_placements`` for its node, indexed by its local rank), pins every thread there and
sets torch's thread count before its first torch operation (``train.data_parallel``), then
checks every thread again once gloo's exist.

What stays off the ranks' CPUs, and what does not: Ray's raylet, GCS and this driving task
are not pinned and may run on any CPU of the node. They are idle while a cell's steps run
(the driver polls every ``cell_loop.POLL_S``; the driving task waits in ``ray.get``), and the
ranks' threads are pinned, so a rank never runs elsewhere; but an idle daemon's wake-ups
land on the ranks' cores. On 2 cores a 1-rank ``cores:1`` cell leaves them a spare core,
and a ``2*cores:1`` cell leaves none: docs/data-parallel.md says how to read that.
"""
from __future__ import annotations

import os
import pickle
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import DatasetSpec
from ..node.topology_types import ScopePlacement
from ..plan.cells import CellSpec
from ..scopes import parse_scope, ranks_of
from .failures import Failure, FailureKind, shorten
from .records import CellOutcome

# Ray's default label on every node: its node id (documented with label selectors)
NODE_ID_LABEL = "ray.io/node-id"


@dataclass(frozen=True)
class RankNode:
    """One node of a data-parallel cell and the rank CPU sets it offers (local rank order)."""
    ray_node_id: str
    name: str
    cpus: int                              # Ray's CPU resource on the node
    placements: tuple[ScopePlacement, ...]


class RankBoard:
    """What the ranks tell the driving task while the cell runs: each rank's node, pid and
    CPU set as soon as it is pinned (so a rank that dies is named), and rank 0's result.
    A Ray actor on the driver's node, booking no CPU."""

    def __init__(self) -> None:
        self.ranks: dict[int, dict[str, Any]] = {}
        self.result: bytes | None = None

    def pinned(self, rank: int, info: dict[str, Any]) -> None:
        self.ranks[rank] = info

    def done(self, result: bytes) -> None:
        self.result = result

    def read(self) -> tuple[dict[int, dict[str, Any]], bytes | None]:
        return self.ranks, self.result


def strategy(scope: str) -> str:
    """The placement group strategy of a data-parallel scope."""
    return "STRICT_SPREAD" if parse_scope(scope).kind == "node" else "STRICT_PACK"


def worker_cpus(scope: str, nodes: list[RankNode], exclusive: bool) -> int:
    """What each worker's bundle books: its share of its node (exclusive), or its rank's cores."""
    ranks = ranks_of(scope)
    per_node = 1 if parse_scope(scope).kind == "node" else ranks
    if exclusive:
        return max(1, min(n.cpus for n in nodes) // per_node)
    return max(len(p.cpus) for n in nodes for p in n.placements)


def backend_of(cell: CellSpec) -> str:
    return "nccl" if cell.model.device == "cuda" else "gloo"


def start_cell(cell: CellSpec, dataset: DatasetSpec, nodes: list[RankNode], exclusive: bool,
               scratch: Path) -> Any:
    """Start the cell's driving task (a Ray task booking no CPU, on the driver's node, never
    retried by Ray); returns its ref, whose value is the cell's ``CellOutcome``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    task = ray.remote(num_cpus=0, max_retries=0)(drive_cell)
    return (task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False))
            .remote(cell, dataset, nodes, exclusive, str(scratch)))


def cancel(ref: Any) -> None:
    """End a running cell (a timeout): its driving task is killed, and with it the actors it
    owns (Ray Train's controller, whose workers are the ranks)."""
    import ray

    try:
        ray.cancel(ref, force=True)
    except Exception:  # already finished
        pass


def drive_cell(cell: CellSpec, dataset: DatasetSpec, nodes: list[RankNode], exclusive: bool,
               scratch: str) -> CellOutcome:
    """Run the cell with ``TorchTrainer`` and wait for it; every failure comes back as a
    failed outcome naming the rank and node where one died."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    here = ray.get_runtime_context().get_node_id()
    board = ray.remote(num_cpus=0)(RankBoard).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
    ranks = ranks_of(cell.scope)
    # worker i's node: for N*node node i; for N*cores:k every rank on the one node
    chosen = [n.ray_node_id for n in nodes] if len(nodes) == ranks else [nodes[0].ray_node_id] * ranks
    gpus = 1 if cell.model.device == "cuda" else 0
    storage = Path(scratch) / f"ray-train-{cell.cell_id}"
    storage.mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"cell": cell, "dataset": dataset, "board": board,
                           "placements": {n.ray_node_id: n.placements for n in nodes},
                           "names": {n.ray_node_id: n.name for n in nodes}},
        scaling_config=ScalingConfig(num_workers=ranks, use_gpu=bool(gpus),
                                     resources_per_worker={"CPU": worker_cpus(cell.scope, nodes, exclusive),
                                                           **({"GPU": gpus} if gpus else {})},
                                     placement_strategy=strategy(cell.scope),
                                     label_selector=[{NODE_ID_LABEL: nid} for nid in chosen]),
        torch_config=TorchConfig(backend=backend_of(cell)),
        run_config=RunConfig(name=cell.cell_id, storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=0)))
    try:
        trainer.fit()
        pins, result = ray.get(board.read.remote(), timeout=60)
        if result is None:
            raise RuntimeError("rank 0 ended without a result")
    except Exception as e:  # a rank died, its node left, or a rank raised: the cell failed
        pins = _pins_now(board)
        return CellOutcome("failed", str(rank_failure(e, pins, nodes)), started, datetime.now(timezone.utc),
                           time.perf_counter() - t0)
    finally:
        ray.kill(board, no_restart=True)
        shutil.rmtree(storage, ignore_errors=True)
    return _outcome(cell, pickle.loads(result), started, t0)


def _pins_now(board: Any) -> dict[int, dict[str, Any]]:
    import ray

    try:
        return ray.get(board.read.remote(), timeout=10)[0]
    except Exception:  # the board is the driver node's: if it is gone there is nothing to name
        return {}


SNIPPET = re.compile(r"\[Rank (\d+) Error Snippet\]:\n(.*?)(?=\n\[Rank \d+ Error Snippet\]|\Z)", re.S)
# Ray's list of what may have killed a worker: possibilities, not what happened
BOILERPLATE = re.compile(r"(Some common causes include|There are some potential root causes).*", re.S)


def rank_failure(exc: BaseException, pins: dict[int, dict[str, Any]], nodes: list[RankNode]) -> Failure:
    """The failure of a data-parallel cell in words: which rank died (Ray Train's health check
    names it: the others then fail on their closed connections), its pid and node, and the
    signal only where Ray states one; a rank that raised, in its own last line."""
    text = str(exc)
    snippets = {int(r): body for r, body in SNIPPET.findall(text)}
    died = sorted(r for r, body in snippets.items() if "health check failed" in body or "actor died" in body)
    raised = sorted(set(snippets) - set(died))
    lost = [n.name for n in nodes if not _node_alive(n.ray_node_id)]

    def who(r: int) -> str:
        info = pins.get(r)
        return f"rank {r} (pid {info['pid']}) on {info['node']}" if info else f"rank {r}"

    if lost:
        return Failure(FailureKind.NODE_LOST, shorten(f"{', '.join(lost)} left the cluster mid-cell"
                                                      + (f"; {', '.join(map(who, died))} died" if died else "")))
    if died:
        said = [BOILERPLATE.sub("", snippets[r]) for r in died]
        sig = next((m.group(0) for b in said if (m := re.search(r"\bSIG[A-Z]+\b|signal \d+", b))), None)
        detail = next((m.group(1).strip() for b in said if (m := re.search(r"Worker exit detail: ([^.]*)", b))), "")
        how = f"killed by {sig}" if sig else "died (Ray does not say by which signal)"
        return Failure(FailureKind.PROCESS_DIED, shorten(f"{', '.join(map(who, died))} {how}"
                                                         + (f"; Ray: {detail}" if detail else "")))
    if raised:       # a rank raised: the cell's own failure, in the rank's words
        why = "; ".join(f"{who(r)}: {_last_line(snippets[r])}" for r in raised)
        return Failure(FailureKind.CELL_ERROR, shorten(why, 600))
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    kind = FailureKind.PROCESS_DIED if "died" in text.lower() else FailureKind.CELL_ERROR
    return Failure(kind, shorten(f"{type(exc).__name__}: {first}", 600))


def _last_line(text: str) -> str:
    """The last non-empty line of a traceback: its own exception line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no words)"


def _node_alive(node_id: str) -> bool:
    from . import ray_io

    return ray_io.node_alive(node_id)


def _outcome(cell: CellSpec, result: Any, started: datetime, t0: float) -> CellOutcome:
    """The cell's outcome from rank 0's result: steps in the store's schema, the ranks'
    layout, the backend and its version."""
    from importlib.metadata import version

    from ..store import STEPS_SCHEMA, conform
    from .records import ProcessFacts

    pins = result.pins
    first = pins[0]
    facts = ProcessFacts(threads=sum(p["threads"] for p in pins),
                         cpus=tuple(sorted({c for p in pins for c in p["cpus"]})),
                         numa_binding=first["numa_binding"], placement_warning=None, core_kinds=None,
                         hostname=first["hostname"], pid=first["pid"], torch_version=result.torch_version,
                         ray_version=version("ray"), hrvs_ray_version=result.hrvs_ray_version,
                         python_version=result.python_version, process="ray-train")
    return CellOutcome("ok", None, started, datetime.now(timezone.utc), time.perf_counter() - t0,
                       prepare_seconds=result.prepare_seconds, images_decoded=result.images_decoded,
                       images_cached=result.images_cached, facts=facts,
                       steps=conform(result.rows, STEPS_SCHEMA),
                       data_parallel=result.data_parallel)


def _train_loop(config: dict[str, Any]) -> None:
    """One worker: find this rank's CPU set, pin there, run the rank, hand rank 0's result
    to the board."""
    import ray
    import ray.train

    from ..train.data_parallel import pin_rank, run_rank, summarise

    ctx = ray.train.get_context()
    rank, local = ctx.get_world_rank(), ctx.get_local_rank()
    node_id = ray.get_runtime_context().get_node_id()
    offered = config["placements"][node_id]
    # N*node: the node's one placement (several Cluster nodes on one host share an IP, and Ray
    # Train counts local ranks by IP); N*cores:k and N*socket: this rank's disjoint CPU set
    placement = offered[0] if len(offered) == 1 else offered[local]
    applied = pin_rank(placement)
    ray.get(config["board"].pinned.remote(rank, {
        "pid": os.getpid(), "node": config["names"][node_id], "ray_node_id": node_id,
        "hostname": __import__("socket").gethostname(), "cpus": list(applied.cpus)}), timeout=60)
    result = run_rank(config["cell"], config["dataset"], config["names"][node_id], local, applied)
    if rank == 0:
        out = summarise(result, ray_train_version=ray.__version__)
        ray.get(config["board"].done.remote(pickle.dumps(out)), timeout=60)
