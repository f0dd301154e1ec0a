"""Distinct pass shapes: how many different (batch, height, width) a cell's forward passes
take, step by step. Pure: numpy only, no torch, no ray.

PyTorch's CPU kernel caches keep one compiled kernel per new input shape, so memory grows
with the shapes a cell has seen, not with the pixels of its current step. A pass shape is
batch × padded height × padded width of one forward/backward pass: one per step for ``pad``
and ``bucket``, one per micro-batch under ``accumulate``. The cell (``train.cell``) and
``hrvs-ray plan`` count with the same functions, from the same geometry rules.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..remedy_axes import Remedy
from .padding import round_up
from .policies import micro_slices

PassShape = tuple[int, int, int]   # (images, height, width)


def step_pass_shapes(heights: np.ndarray, widths: np.ndarray, idx: np.ndarray,
                     remedy: Remedy) -> list[list[PassShape]]:
    """The pass shapes of each optimizer step of ``idx`` ((steps, batch) indices into
    heights/widths, the shapes after resize), padded as ``padding.geometry`` pads them."""
    parts = []
    for s in micro_slices(idx.shape[1], remedy):
        sub = idx[:, s]
        hh = round_up(np.asarray(heights)[sub].max(axis=1).astype(np.int64), remedy.shape_round)
        ww = round_up(np.asarray(widths)[sub].max(axis=1).astype(np.int64), remedy.shape_round)
        parts.append([(sub.shape[1], int(a), int(b)) for a, b in zip(hh.tolist(), ww.tolist(), strict=False)])
    return [list(step) for step in zip(*parts, strict=False)] if parts else []


class ShapeCounter:
    """Distinct pass shapes seen so far; ``see`` one step's passes at a time."""

    def __init__(self) -> None:
        self.seen: set[PassShape] = set()

    def see(self, shapes: Iterable[PassShape]) -> tuple[int, bool]:
        """(distinct shapes seen including this step, whether this step brought a new one)."""
        before = len(self.seen)
        self.seen.update(tuple(int(v) for v in s) for s in shapes)
        return len(self.seen), len(self.seen) > before


def distinct_counts(steps: list[list[PassShape]]) -> np.ndarray:
    """Distinct pass shapes seen after each step (cumulative)."""
    counter = ShapeCounter()
    return np.array([counter.see(s)[0] for s in steps], dtype=np.int64)


def shape_curve(heights: np.ndarray, widths: np.ndarray, idx: np.ndarray, remedy: Remedy,
                points: int = 48) -> dict[str, list[int] | int]:
    """How many distinct pass shapes an epoch's steps ``idx`` meet as images go by, at about
    ``points`` step checkpoints spaced geometrically (every early step, then sparser) and the
    epoch's last step: ``{"shape_round", "images", "distinct"}``. What a compiled cell's
    break-even projection reads (``report.compile_section``): a static graph recompiles per
    new pass shape, so compile seconds grow with this curve, not with the images."""
    counts = distinct_counts(step_pass_shapes(heights, widths, idx, remedy))
    n = len(counts)
    if n == 0:
        return {"shape_round": remedy.shape_round, "images": [], "distinct": []}
    at = np.unique(np.concatenate([np.geomspace(1, n, num=min(points, n)).astype(np.int64), [n]])) - 1
    return {"shape_round": remedy.shape_round, "images": [int((i + 1) * idx.shape[1]) for i in at],
            "distinct": [int(counts[i]) for i in at]}
