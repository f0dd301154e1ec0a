"""Before a sweep starts anything: can it run on its dataset? Every answer in one pass.

``preflight`` is what ``hrvs-ray sweep`` calls before Ray starts or any results folder is
written: batch sizes against the dataset (a synthetic one from its planned shape table,
before any file is generated), the dataset's presence, then the synthetic generation, then
the header of every image the cells will read (size from the header, no decode). All
missing, unidentifiable or wrong-sized images are listed together, with a pointer to
``hrvs-ray data check`` (which also decodes every pixel, finding truncated files).

The planning part (``planned_table``, ``needed_image_ids``) is pure: numpy, no torch, no
ray, no pixels. Image checks live in ``data.check`` (Pillow).
"""
from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ..config import Sweep, SweepError, SyntheticSpec
from ..data.mame import Dataset, DatasetError, metadata_path, open_dataset, read_metadata
from ..data.shapes import METADATA_CSV, ShapeTable, shipped_shape_table
from ..data.synthetic import draw_rows, is_complete
from .cells import plan_cells
from .step_plans import StepPlans
from .table import check_plan

DATA_CHECK_HINT = "run 'hrvs-ray data check {sweep}' to list every problem, truncated files included"


class DataProblems(SweepError):
    """Images the sweep's cells need that cannot be used; ``problems`` lists them all."""

    def __init__(self, source: str, problems: list, checked: int) -> None:
        self.problems = problems
        lines = "".join(f"\n  {p.file}: {p.kind}: {p.detail}" for p in problems)
        super().__init__(source, "", f"{len(problems)} of the {checked} images the cells need cannot be "
                                     f"used (checked from their headers):{lines}\n"
                                     + DATA_CHECK_HINT.format(sweep=source))


def _fail(sweep: Sweep, problem: str) -> SweepError:
    return SweepError(sweep.source or "<sweep>", "dataset.path", problem)


def _metadata_path(sweep: Sweep) -> Path:
    try:
        return metadata_path(Path(sweep.dataset.path))
    except DatasetError as e:
        raise _fail(sweep, str(e)) from None


def planned_table(sweep: Sweep) -> tuple[ShapeTable, str]:
    """The subset's image shapes in sorted-id order, without writing anything: a synthetic
    dataset not yet generated is planned from the shipped MAMe table, as generated."""
    ds = sweep.dataset
    spec = ds.synthetic or SyntheticSpec()
    if ds.kind == "synthetic" and not is_complete(Path(ds.path), spec):
        table = draw_rows(shipped_shape_table(), spec).select(ds.subset).sorted()
        return table, f"the synthetic dataset to be generated in {ds.path}"
    csv_path = _metadata_path(sweep)
    try:
        full = read_metadata(csv_path)
    except DatasetError as e:
        raise _fail(sweep, str(e)) from None
    return full.select(ds.subset).sorted(), str(csv_path)


def check_dataset(sweep: Sweep) -> ShapeTable:
    """Every input set's batch fits in the subset; writes nothing. Returns the planned table."""
    table, where = planned_table(sweep)
    if len(table) == 0:
        raise SweepError(sweep.source or "<sweep>", "dataset.subset",
                         f"no images in subset {sweep.dataset.subset!r} in {where}")
    check_plan(sweep, table, where)
    return table


def needed_image_ids(sweep: Sweep, table: ShapeTable, input_sets: Collection[str] | None = None,
                     plans: StepPlans | None = None) -> list[str]:
    """Sorted ids of every image some cell of ``sweep`` reads (of ``input_sets`` only, when
    given): the union of the cells' step plans. ``table`` is the subset in sorted-id order;
    ``plans`` (over that table) keeps the plans for the rest of the sweep. Cells that share
    a plan (``StepPlans``' key) are planned once."""
    plans = plans or StepPlans(table)
    used: set[int] = set()
    for cell in plan_cells(sweep, ["-"]):
        if input_sets is None or cell.input_set.name in input_sets:
            used.update(plans.indices(cell).ravel().tolist())
    return [table.ids[i] for i in sorted(used)]


def preflight(sweep: Sweep, progress: bool = False) -> Dataset:
    """``preflight_plans`` without the plans (for callers that only need the checked dataset)."""
    return preflight_plans(sweep, progress)[0]


def preflight_plans(sweep: Sweep, progress: bool = False) -> tuple[Dataset, StepPlans]:
    """Validate ``sweep`` against its dataset, generate a synthetic one if needed, check
    the headers of every image the cells need; return the opened dataset and the step
    plans made for it (the sweep's one copy of them). Raises SweepError (``DataProblems``
    listing every bad image) before anything is started."""
    from ..data.check import check_images, items_for, pixel_limit

    check_dataset(sweep)
    try:
        dataset = open_dataset(sweep.dataset)   # generates a synthetic dataset once
    except DatasetError as e:
        raise _fail(sweep, f"{e}\n" + DATA_CHECK_HINT.format(sweep=sweep.source or "SWEEP.yaml")) from None
    plans = StepPlans(dataset.table.sorted())
    ids = needed_image_ids(sweep, plans.table, plans=plans)
    limit = pixel_limit(int((dataset.table.widths * dataset.table.heights).max()))
    problems = check_images(items_for(dataset.root, ids, dataset.shapes), limit, full=False, progress=progress)
    if problems:
        raise DataProblems(sweep.source or "<sweep>", problems, len(ids))
    return dataset, plans


@dataclass(frozen=True)
class DataCheck:
    checked: int        # image files looked at
    problems: list      # data.check.Problem, files in sorted-id order, then CSV rows
    seconds: float


def data_check(sweep: Sweep, input_sets: Collection[str] | None = None, every_image: bool = False,
               workers: int | None = None, progress: bool = False) -> DataCheck:
    """Decode every image the sweep's cells use (``every_image``: every image of the
    subset) and look at the metadata; writes nothing. SweepError when there is no
    dataset to check (missing, not yet generated) or a batch cannot fit."""
    from ..data.check import Problem, check_images, items_for, metadata_problems, pixel_limit

    t0 = time.perf_counter()
    ds = sweep.dataset
    if ds.kind == "synthetic" and not is_complete(Path(ds.path), ds.synthetic or SyntheticSpec()):
        raise _fail(sweep, f"the synthetic dataset in {ds.path} is not generated yet (nothing to check): "
                           f"'hrvs-ray sweep' generates it, as does 'hrvs-ray data synth'")
    csv_path = _metadata_path(sweep)
    try:
        full = read_metadata(csv_path)
    except DatasetError as e:   # a malformed row is a data problem: listed, not a crash
        return DataCheck(0, [Problem(str(csv_path), "metadata", str(e))], time.perf_counter() - t0)
    table = full.select(ds.subset).sorted()
    check_plan(sweep, table, str(csv_path))
    ids = list(dict.fromkeys(table.ids)) if every_image else needed_image_ids(sweep, table, input_sets)
    shapes = {i: (int(h), int(w)) for i, h, w in zip(table.ids, table.heights, table.widths, strict=False)}
    limit = pixel_limit(int((table.widths * table.heights).max()))
    problems = check_images(items_for(Path(ds.path), ids, shapes), limit, full=True, workers=workers,
                            progress=progress)
    problems += metadata_problems(Path(ds.path), METADATA_CSV, full, ds.subset)
    return DataCheck(len(ids), problems, time.perf_counter() - t0)
