"""Each cell's step plan, computed once per sweep and shared by everything that needs it.

Pure: numpy only, no torch, no ray, no pixels. A step plan is the image ids of every
optimizer step of a cell (``cells.step_plan``). The driver builds one :class:`StepPlans`
from the subset's shape table; the data pre-flight (which images to check), the memory
pre-flight (the largest pass), the cell on its node (``CellSpec.batches``) and the
report's sampled-steps view (``plan.json`` in the results folder, ``epoch.policy_views``)
all read it, so no cell's plan is computed twice.

Scope, cluster, precision, memory format, checkpointing, kernel cache and shape rounding
never change which images a step holds: cells that differ only in those share one plan
(the key below), which is what pairs them by construction.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..config import InputSetSpec
from ..data.shapes import ShapeTable, transformed_arrays
from ..remedy_axes import Remedy
from .policies import step_indices, step_pixel_stats

if TYPE_CHECKING:  # cells imports nothing from here; the annotation only
    from .cells import CellSpec

Key = tuple  # (input set, batching, window, seed, run, steps, warm-up)


class StepPlans:
    """Memoised step plans over one shape table (sorted by id, as plans index into it)."""

    def __init__(self, table: ShapeTable) -> None:
        self.table = table
        self._plans: dict[Key, np.ndarray] = {}
        self._shapes: dict[InputSetSpec, tuple[np.ndarray, np.ndarray]] = {}
        self.computed = 0   # distinct plans computed: what "computed once" is checked against

    def shapes(self, iset: InputSetSpec) -> tuple[np.ndarray, np.ndarray]:
        """Heights and widths after ``iset``'s resize, in table order."""
        if iset not in self._shapes:
            self._shapes[iset] = transformed_arrays(iset, self.table.heights, self.table.widths)
        return self._shapes[iset]

    def rows(self, iset: InputSetSpec, remedy: Remedy, seed: int, run: int, n_batches: int,
             warmup_steps: int) -> np.ndarray:
        """(n_batches, batch size) indices into the table: every step's images."""
        key = (iset, remedy.batching, remedy.window if remedy.batching == "bucket" else None, seed, run,
               n_batches, warmup_steps)
        if key not in self._plans:
            h, w = self.shapes(iset)
            self._plans[key] = step_indices(remedy, h, w, seed, run, iset.batch_size, n_batches, warmup_steps)
            self.computed += 1
        return self._plans[key]

    def indices(self, cell: CellSpec) -> np.ndarray:
        return self.rows(cell.input_set, cell.remedy, cell.seed, cell.run, cell.n_batches, cell.warmup_steps)

    def batches(self, cell: CellSpec) -> tuple[tuple[str, ...], ...]:
        """The image ids of each of the cell's optimizer steps (what ``CellSpec.batches`` carries)."""
        ids = self.table.ids
        return tuple(tuple(ids[i] for i in row) for row in self.indices(cell))

    def largest_pass(self, cell: CellSpec) -> int:
        """Total pixels of the cell's largest forward/backward pass (the memory pre-flight's input)."""
        h, w = self.shapes(cell.input_set)
        return int(step_pixel_stats(h, w, self.indices(cell), cell.remedy)["largest_pass"].max())
