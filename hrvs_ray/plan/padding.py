"""Padding geometry: where each image sits in its zero-padded batch, and the pixel
accounting (informative / padding / total) of a batch. Pure: numpy only, no torch, no ray.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Placement:
    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class BatchGeometry:
    """Where each image goes in the zero-padded batch, and the pixel accounting
    (pixels per channel plane: an H x W RGB image counts H*W pixels, as in the paper)."""
    ids: tuple[str, ...]
    height: int
    width: int
    placements: tuple[Placement, ...]

    @property
    def batch_size(self) -> int:
        return len(self.ids)

    @property
    def total_px(self) -> int:
        return self.batch_size * self.height * self.width

    @property
    def informative_px(self) -> int:
        return sum(p.height * p.width for p in self.placements)

    @property
    def padding_px(self) -> int:
        return self.total_px - self.informative_px

    def plan_fingerprint(self) -> str:
        """Hash of ids, order and geometry: equal across machines iff the batch plan is."""
        h = hashlib.sha256()
        h.update(f"{self.height}x{self.width}".encode())
        for i, p in zip(self.ids, self.placements, strict=False):
            h.update(f"|{i}:{p.top},{p.left},{p.height},{p.width}".encode())
        return h.hexdigest()[:16]


def round_up(x: int | np.ndarray, multiple: int) -> int | np.ndarray:
    """``x`` rounded up to a multiple of ``multiple`` (unchanged when ``multiple`` is 0: no rounding)."""
    return x if not multiple else -(-x // multiple) * multiple


def geometry(ids: Sequence[str], shapes: Mapping[str, tuple[int, int]], shape_round: int = 0,
             pad_to: tuple[int, int] | None = None) -> BatchGeometry:
    """Pad every image to the batch's largest height and width (rounded up to a multiple of
    ``shape_round`` px when given), centred as the authors' MAMe trainer does (the odd pixel
    of padding goes to the bottom / right). ``pad_to``: at least this (H, W) (a data-parallel
    rank under the ``uniform`` split pads to the step's largest image)."""
    hw = [shapes[i] for i in ids]
    H = round_up(max(h for h, _ in hw), shape_round)
    W = round_up(max(w for _, w in hw), shape_round)
    if pad_to is not None:
        H, W = max(H, pad_to[0]), max(W, pad_to[1])
    places = tuple(Placement((H - h) // 2, (W - w) // 2, h, w) for h, w in hw)
    return BatchGeometry(tuple(ids), H, W, places)


def pixel_stats(heights: np.ndarray, widths: np.ndarray, idx: np.ndarray,
                shape_round: int = 0) -> dict[str, np.ndarray]:
    """Per-batch informative/padding/total pixels for an index matrix, vectorised (for plan);
    the batch is padded as ``geometry`` pads it."""
    h = heights[idx]
    w = widths[idx]
    informative = (h.astype(np.int64) * w).sum(axis=1)
    total = (round_up(h.max(axis=1).astype(np.int64), shape_round)
             * round_up(w.max(axis=1).astype(np.int64), shape_round)
             * idx.shape[1])
    return {"informative": informative, "padding": total - informative, "total": total}
