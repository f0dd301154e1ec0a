"""Sweep -> cells: the cartesian product of clusters, runs, scopes, input sets and remedies,
each a frozen ``CellSpec`` with a readable id; and each cell's batches (``step_plan``).

Pure: no torch, no ray, no pixels.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..config import CounterSpec, InputSetSpec, NetworkSpec, OptimizerSpec, Sweep
from ..data.shapes import transformed_arrays
from ..names import id_part
from ..remedy_axes import PAPER, Remedy
from ..scopes import ranks_of
from .policies import step_indices


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
    model: NetworkSpec          # precision and memory format: in ``remedy``, once
    optimizer: OptimizerSpec
    counters: CounterSpec
    cell_id: str
    remedy: Remedy = PAPER
    release_heap: bool = False  # execution.release_heap: free heap handed back before each step
    # The image ids of each optimizer step, planned once by the driver (``StepPlans.batches``)
    # and carried to the node, which trains exactly these; empty until planned.
    batches: tuple[tuple[str, ...], ...] = ()
    # After its planned steps, train the timed steps' batches once more, recorded as replay
    # rows: a sweep that compiles needs steps without a compile on the images it measures,
    # and with a new shape at nearly every step a static graph never reaches one on fresh
    # batches. Every compile value of such a sweep replays, eager included (paired).
    replay: bool = False

    @property
    def n_batches(self) -> int:
        return self.warmup_steps + self.steps

    def to_json(self, batches: bool = True) -> str:
        """The spec as JSON; ``batches=False`` leaves the step plan out (the cells table
        records the spec, while each step row records its own images)."""
        d = asdict(self)
        if not batches:
            del d["batches"]
        return json.dumps(d, sort_keys=True)

    def planned(self, batches: tuple[tuple[str, ...], ...]) -> CellSpec:
        """This spec carrying its step plan."""
        if len(batches) != self.n_batches:
            raise ValueError(f"{self.cell_id}: a plan of {len(batches)} steps for a cell of {self.n_batches}")
        return replace(self, batches=batches)

    @staticmethod
    def from_json(text: str) -> CellSpec:
        d = json.loads(text)
        d["input_set"]["size"] = tuple(d["input_set"]["size"])
        d["input_set"] = InputSetSpec(**d["input_set"])
        d["model"] = NetworkSpec(**d["model"])
        d["optimizer"]["betas"] = tuple(d["optimizer"]["betas"])
        d["optimizer"] = OptimizerSpec(**d["optimizer"])
        d["counters"] = CounterSpec(**d["counters"])
        d["remedy"] = Remedy(**d["remedy"])
        d["batches"] = tuple(tuple(b) for b in d.get("batches", ()))
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
    order of ``RemediesSpec.combinations`` (batching, precision, memory format, checkpointing,
    ..., split). A single-rank scope runs split ``shard`` only: once, whatever
    ``remedies.split`` lists; a data-parallel scope (``N*SCOPE``) runs every listed split.
    Every split of a scope trains the same images per step (the split only deals them to
    ranks), and so does every rank count: the global batch is the 1-rank cell's step."""
    cells = []
    t = sweep.training
    base = base_remedy(sweep)
    for cluster in clusters:
        counters = cluster_counters(sweep, cluster)
        for run in range(t.runs):
            for scope in cluster_scopes(sweep, cluster):
                for iset in sweep.input_sets:
                    for remedy in sweep.remedies.combinations(ranks_of(scope)):
                        params = {"sweep": sweep.fingerprint(), "cluster": cluster, "scope": scope,
                                  "input_set": asdict(iset), "run": run, "counters": asdict(counters)}
                        extra = remedy.id_params(base)
                        if extra:
                            params["remedy"] = extra
                        cells.append(CellSpec(
                            sweep=sweep.name, cluster=cluster, scope=scope, input_set=iset, run=run,
                            seed=t.seed, warmup_steps=t.warmup_steps, steps=t.steps,
                            model=sweep.model.network,
                            optimizer=sweep.optimizer, counters=counters, remedy=remedy,
                            release_heap=sweep.execution.release_heap, replay=sweep.remedies.replays,
                            cell_id=cell_id(cluster, scope, iset, run, params, remedy.label if extra else "")))
    return cells


def step_plan(cell: CellSpec, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """(n_batches, batch_size) indices into the sorted shape table: the images of each of
    the cell's optimizer steps under its batching policy. ``heights``/``widths`` are the
    original shapes in sorted-id order (the input set's resize is applied here). Cells that
    differ only in their remedy train their warm-up and their timed steps on the same
    images: they share seed and run, and every policy regroups ``pad``'s steps."""
    h, w = transformed_arrays(cell.input_set, heights, widths)
    return step_indices(cell.remedy, h, w, cell.seed, cell.run, cell.input_set.batch_size, cell.n_batches,
                        cell.warmup_steps)
