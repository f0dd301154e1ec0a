"""The paper's Table 1 from metadata alone: informative / padding / total MP per optimizer
step and planned memory, per input set and batching policy; and the checks every plan
(``hrvs-ray plan``, the sweep's pre-flight, ``data check``) makes before anything runs; and,
for a sweep with data-parallel scopes, the pixel side of each split (``split_table``).

Pure: no torch, no ray, no pixels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import InputSetSpec, Sweep, SweepError
from ..data.shapes import METADATA_CSV, ShapeTable, read_metadata_csv, shipped_shape_table, transformed_arrays
from ..metrics import ratio_of_sums
from ..remedy_axes import Remedy
from ..scopes import ranks_of
from .epoch import policy_views
from .memory_model import estimate_step_bytes
from .policies import step_indices, step_pixel_stats
from .rank_split import SPLITS, rank_padded_px, split_step
from .shape_diversity import distinct_counts, step_pass_shapes

Estimator = Callable[[int, Remedy], int]   # (pixels of a pass, remedy) -> planned bytes


def planning_shapes(sweep: Sweep, read_disk: bool = True) -> tuple[ShapeTable, str]:
    """Original image shapes for planning: the dataset's own metadata when it is on disk
    (and ``read_disk``), else the shipped MAMe table (real shapes; scaled like the synthetic
    generator would)."""
    csv_path = Path(sweep.dataset.path) / METADATA_CSV
    if read_disk and csv_path.is_file():
        return read_metadata_csv(csv_path).select(sweep.dataset.subset).sorted(), str(csv_path)
    table = shipped_shape_table().select(sweep.dataset.subset).sorted()
    if sweep.dataset.kind == "synthetic" and sweep.dataset.synthetic is not None:
        from ..data.synthetic import draw_rows  # pure numpy, no pixels
        table = draw_rows(shipped_shape_table(), sweep.dataset.synthetic).select(sweep.dataset.subset).sorted()
        return table, "shipped MAMe shape table, drawn and scaled as the synthetic generator does"
    return table, "shipped MAMe shape table (dataset not on disk)"


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
    step over ``n_batches`` seeded steps (run 0), the distinct pass shapes they hold, the
    planned memory per step in GB for every precision × memory format × checkpointing of
    the sweep (``memory_gb``: the first of them), and padding and label diversity over the
    sweep's timed steps (``sampled``) and over one full epoch (``epoch``, see ``plan.epoch``;
    these two are of the policy's batches, before any shape rounding)."""
    if shapes is None:
        shapes, source = planning_shapes(sweep)
        check_plan(sweep, shapes, source)
    spec = sweep.remedies
    views = policy_views(sweep, shapes)
    out: dict[str, dict] = {}
    for iset in sweep.input_sets:
        h, w = transformed_arrays(iset, shapes.heights, shapes.widths)
        for batching in spec.batching:
            for rnd in spec.shape_round:
                policy = replace(spec.combinations()[0], batching=batching, shape_round=rnd)
                tags = ([batching] if len(spec.batching) > 1 else []) + \
                    ([f"round {rnd}" if rnd else "no round"] if len(spec.shape_round) > 1 or rnd else [])
                name = f"{iset.name} [{', '.join(tags)}]" if tags else iset.name
                out[name] = _policy_entry(sweep, iset, policy, h, w, n_batches, estimate) | views[(iset.name, batching)]
    return out


def _policy_entry(sweep: Sweep, iset: InputSetSpec, policy: Remedy, h: np.ndarray, w: np.ndarray,
                  n_batches: int, estimate: Estimator) -> dict:
    spec = sweep.remedies
    # warm-up and timed steps are regrouped apart, as a cell of n_batches steps does (step_plan)
    idx = step_indices(policy, h, w, sweep.training.seed, 0, iset.batch_size, n_batches, sweep.training.warmup_steps)
    stats = step_pixel_stats(h, w, idx, policy)
    passes = step_pass_shapes(h, w, idx, policy)
    entry: dict = {"input_set": iset.name, "batching": policy.batching, "shape_round": policy.shape_round,
                   "batch_size": iset.batch_size, "batches": int(idx.shape[0]),
                   "passes": sum(len(p) for p in passes), "distinct_shapes": int(distinct_counts(passes)[-1])
                   if passes else 0}
    for k in ("informative", "padding", "total"):
        entry[k] = _mma(stats[k], 1e6)
    # the one statistic (hrvs_ray.metrics): Σ padding ÷ Σ total over the planned steps
    entry["padding_share"] = ratio_of_sums(stats["padding"], stats["total"])
    entry["memory"] = [
        {"precision": r.precision, "memory_format": r.memory_format, "checkpointing": r.checkpointing,
         # a compiled setting is named, and its memory is not predicted: the model knows eager
         # steps only, and compiling adds the compiler's own memory at every (re)compile
         **({"compile": r.compile, "gb": None} if r.compile != "eager" else
            {"gb": _mma([estimate(int(p), r) for p in stats["largest_pass"]], 1e9)})}
        for r in spec.combinations(ranks=1) if (r.batching, r.kernel_cache, r.shape_round) ==
        (spec.batching[0], spec.kernel_cache[0], spec.shape_round[0])]
    entry["memory_gb"] = entry["memory"][0]["gb"]
    return entry


def data_parallel_ranks(sweep: Sweep) -> tuple[int, ...]:
    """The distinct rank counts of the sweep's data-parallel scopes (every cluster's), ascending."""
    scopes = set(sweep.scopes) | {s for c in sweep.clusters if c.scopes for s in c.scopes}
    return tuple(sorted({ranks_of(s) for s in scopes} - {1}))


def split_table(sweep: Sweep, n_batches: int, shapes: ShapeTable) -> list[dict]:
    """The pixel side of each split, from metadata alone: per input set, batching policy of the
    sweep, data-parallel rank count and split policy (all three, listed or not), over the
    same ``n_batches`` seeded steps as Table 1: the mean pixel imbalance of a step (largest
    rank's padded px ÷ the ranks' mean), Σ over the steps of the largest rank's padded MP
    (the work that sets the pace), and ``vs_shard`` = shard's Σ ÷ this split's Σ."""
    out = []
    spec = sweep.remedies
    for iset in sweep.input_sets:
        h, w = transformed_arrays(iset, shapes.heights, shapes.widths)
        for batching in spec.batching:
            policy = replace(spec.combinations()[0], batching=batching)
            idx = step_indices(policy, h, w, sweep.training.seed, 0, iset.batch_size, n_batches,
                               sweep.training.warmup_steps)
            micro = policy.micro_batch if batching == "accumulate" else 0
            for ranks in data_parallel_ranks(sweep):
                largest: dict[str, int] = {}
                for split in SPLITS:
                    worst, imbalance = 0, []
                    for row in idx.tolist():
                        step = [(int(h[i]), int(w[i])) for i in row]
                        px = rank_padded_px(step, split_step(step, ranks, split, policy.shape_round), split,
                                            policy.shape_round, micro)
                        worst += max(px)
                        imbalance.append(max(px) * len(px) / sum(px) if sum(px) else 1.0)
                    largest[split] = worst
                    out.append({"input_set": iset.name, "batching": batching, "ranks": ranks, "split": split,
                                "imbalance": float(np.mean(imbalance)), "largest_rank_mp": worst / 1e6,
                                "vs_shard": largest["shard"] / worst if worst else 1.0})
    return out
