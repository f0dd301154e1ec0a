"""What a sweep's sampled steps stand for: padding and label diversity over the steps a
sweep times, and over one full epoch of real training under the same policy.

Pure: numpy only, no torch, no ray, no pixels (``hrvs-ray plan`` and the report call it).
A cell times a few steps; under ``bucket`` those steps regroup only ``pad``'s few batches
(windows of at most ``window`` of them), while an epoch of training regroups every batch of
the epoch in full windows. Both figures are shown so a user sees what was measured and what
training would meet. Label diversity counts a batch's classes (MAMe's medium) per
optimizer step: shape correlates with class in MAMe, so sorting by shape can gather one
medium into a batch, which is not what SGD assumes.

Every share is a ratio of sums (Σ padding ÷ Σ total pixels), never a mean of per-step ratios.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..config import InputSetSpec, Sweep
from ..data.shapes import ShapeTable, label_index, transformed_arrays
from ..remedy_axes import Remedy
from .policies import epoch_indices, step_pixel_stats
from .shape_diversity import shape_curve
from .step_plans import StepPlans

# "markedly less diverse than pad": mean distinct classes per batch this much below pad's,
# or some batch of a single class where pad has none
LESS_DIVERSE = 0.9


def label_codes(shapes: ShapeTable) -> np.ndarray:
    """Class index per image (the medium), in the table's row order."""
    index = label_index(shapes.mediums)
    return np.array([index[m] for m in shapes.mediums], dtype=np.int64)


def label_diversity(idx: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Per optimizer step (a row of ``idx``): distinct classes and the largest class's share
    of the step's images; their mean and extreme over the steps."""
    if len(idx) == 0:
        nan = float("nan")
        return {"mean_classes": nan, "min_classes": nan, "mean_top_share": nan, "max_top_share": nan}
    lab = labels[np.asarray(idx)]
    counts = np.zeros((len(lab), int(labels.max()) + 1), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(lab)), lab.shape[1]), lab.ravel()), 1)
    distinct = (counts > 0).sum(axis=1)
    top = counts.max(axis=1) / lab.shape[1]
    return {"mean_classes": float(distinct.mean()), "min_classes": float(distinct.min()),
            "mean_top_share": float(top.mean()), "max_top_share": float(top.max())}


def _summary(idx: np.ndarray, h: np.ndarray, w: np.ndarray, labels: np.ndarray, policy: Remedy) -> dict:
    stats = step_pixel_stats(h, w, idx, policy)
    total, padding = int(stats["total"].sum()), int(stats["padding"].sum())
    return {"steps": int(len(idx)), "informative_px": int(stats["informative"].sum()), "total_px": total,
            "padding_share": padding / total if total else 0.0, "labels": label_diversity(idx, labels)}


def sampled_view(iset: InputSetSpec, policy: Remedy, shapes: ShapeTable, seed: int, runs: int,
                 warmup_steps: int, steps: int, plans: StepPlans | None = None) -> dict:
    """Padding and label diversity over the timed steps of every run, exactly the steps the
    sweep's cells time (the cells' own plans, from ``plans`` when given: the driver's copy)."""
    plans = plans or StepPlans(shapes)
    h, w = plans.shapes(iset)
    rows = [plans.rows(iset, policy, seed, run, warmup_steps + steps, warmup_steps)[warmup_steps:]
            for run in range(runs)]
    idx = np.concatenate(rows) if rows else np.zeros((0, iset.batch_size), dtype=np.int64)
    return _summary(idx, h, w, label_codes(shapes), policy) | {"runs": runs}


def epoch_view(iset: InputSetSpec, policy: Remedy, shapes: ShapeTable, seed: int, run: int = 0,
               shape_rounds: Sequence[int] = ()) -> dict:
    """Padding, exact pixel totals and label diversity over every step of one full epoch
    (run ``run``'s first) under ``policy``: ``bucket`` in full windows of ``window`` batches.
    ``shape_rounds``: for each rounding, the distinct pass shapes the epoch meets as images
    go by (``shape_diversity.shape_curve``; a compiling sweep's break-even reads them)."""
    h, w = transformed_arrays(iset, shapes.heights, shapes.widths)
    idx = epoch_indices(policy, h, w, seed, run, iset.batch_size)
    out = _summary(idx, h, w, label_codes(shapes), policy) | {"window": policy.window if policy.batching == "bucket"
                                                              else None}
    if shape_rounds:
        out["pass_shapes"] = [shape_curve(h, w, idx, replace(policy, shape_round=r)) for r in shape_rounds]
    return out


def policy_views(sweep: Sweep, shapes: ShapeTable, batching: Sequence[str] | None = None,
                 plans: StepPlans | None = None) -> dict[tuple[str, str], dict]:
    """(input set, batching policy) -> {"sampled": ..., "epoch": ...} for every input set and
    batching policy of the sweep (its window and micro_batch). ``plans``: the sweep's step
    plans over ``shapes`` (the driver passes its own, so no cell's plan is made twice)."""
    base = sweep.remedies.combinations()[0]
    t = sweep.training
    # only a compiling sweep needs the epoch's shape curves (its break-even projection)
    rounds = sweep.remedies.shape_round if sweep.remedies.replays else ()
    plans = plans or StepPlans(shapes)
    out = {}
    for iset in sweep.input_sets:
        for b in batching or sweep.remedies.batching:
            policy = replace(base, batching=b)
            out[(iset.name, b)] = {"sampled": sampled_view(iset, policy, shapes, t.seed, t.runs, t.warmup_steps,
                                                           t.steps, plans),
                                   "epoch": epoch_view(iset, policy, shapes, t.seed, shape_rounds=rounds)}
    return out


def plan_record(sweep: Sweep, plans: StepPlans) -> dict:
    """What a results folder keeps of the plan (``store.PLAN_FILE``): every input set x
    batching policy's sampled and epoch views, with its batch size, as plain JSON values."""
    views = policy_views(sweep, plans.table, plans=plans)
    return {"plan_version": sweep.plan_version,
            "views": [{"input_set": name, "batching": b, "batch_size": sweep.input_set(name).batch_size, **v}
                      for (name, b), v in views.items()]}


def views_from_record(record: dict) -> dict[tuple[str, str], dict]:
    """``plan_record``'s views keyed again by (input set, batching), each with its batch size."""
    return {(v["input_set"], v["batching"]): {k: x for k, x in v.items() if k not in ("input_set", "batching")}
            for v in record["views"]}


def less_diverse(policy: dict[str, float], pad: dict[str, float]) -> bool:
    """Whether a policy's batches are markedly less diverse than ``pad``'s (see LESS_DIVERSE)."""
    return (policy["mean_classes"] < LESS_DIVERSE * pad["mean_classes"]
            or (policy["min_classes"] == 1 and pad["min_classes"] > 1))


def diversity_sentence(input_set: str, batching: str, policy: dict[str, float], pad: dict[str, float],
                       batch_size: int) -> str | None:
    """One sentence for the answers where ``batching`` makes batches markedly less diverse
    than ``pad`` over an epoch, else None."""
    if batching == "pad" or not less_diverse(policy, pad):
        return None
    single = " and at least one batch is a single class" if policy["min_classes"] == 1 else ""
    return (f"{batching} batches of {input_set} are less diverse than pad's over an epoch: "
            f"{policy['mean_classes']:.1f} distinct classes per batch of {batch_size} on average (pad "
            f"{pad['mean_classes']:.1f}), the largest class up to {policy['max_top_share']:.0%} of a batch (pad "
            f"{pad['max_top_share']:.0%}){single}; SGD assumes batches drawn at random")
