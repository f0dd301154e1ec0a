"""Seeded batch plans and padding geometry. Pure: numpy only, no torch, no ray.

The plan is a function of (image ids, seed, run, batch size) alone. Ids are sorted first,
so the order rows come in from a CSV or a directory listing cannot change a batch, and the
permutation comes from numpy's PCG64 seeded by a SeedSequence, which is specified
bit-for-bit and does not depend on thread count or platform.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def _rng(seed: int, run: int, epoch: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, run, epoch])))


def derived_seed(seed: int, run: int, purpose: int) -> int:
    """A 31-bit seed for one purpose (e.g. model init) of one run, stable everywhere."""
    return int(np.random.SeedSequence([seed, run, 1_000_003, purpose]).generate_state(1)[0] & 0x7FFFFFFF)


def batch_order(ids: Sequence[str], seed: int, run: int, batch_size: int, n_batches: int) -> list[tuple[str, ...]]:
    """The first ``n_batches`` batches of ``batch_size`` ids. Epoch e is a fresh permutation
    (seeded by seed, run, e), so any number of batches can be drawn; a batch never spans an
    epoch boundary with a repeated id."""
    if batch_size <= 0 or n_batches < 0:
        raise ValueError("batch_size must be > 0 and n_batches >= 0")
    canonical = np.array(sorted(ids), dtype=object)
    if len(canonical) < batch_size:
        raise ValueError(f"batch size {batch_size} exceeds the {len(canonical)} images available")
    idx = batch_indices(len(canonical), seed, run, batch_size, n_batches)
    return [tuple(canonical[row]) for row in idx]


def epoch_permutation(n_items: int, seed: int, run: int, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s seeded permutation of the sorted ids: the start of every policy."""
    return _rng(seed, run, epoch).permutation(n_items)


def batch_indices(n_items: int, seed: int, run: int, batch_size: int, n_batches: int) -> np.ndarray:
    """(n_batches, batch_size) indices into the sorted id list; the vectorised core of batch_order."""
    per_epoch = n_items // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} exceeds the {n_items} images available")
    rows = []
    epoch = 0
    while sum(len(r) for r in rows) < n_batches:
        perm = epoch_permutation(n_items, seed, run, epoch)
        rows.append(perm[: per_epoch * batch_size].reshape(per_epoch, batch_size))
        epoch += 1
    if not rows:
        return np.zeros((0, batch_size), dtype=np.int64)
    return np.concatenate(rows)[:n_batches]


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


def geometry(ids: Sequence[str], shapes: Mapping[str, tuple[int, int]], shape_round: int = 0) -> BatchGeometry:
    """Pad every image to the batch's largest height and width (rounded up to a multiple of
    ``shape_round`` px when given), centred as the authors' MAMe trainer does (the odd pixel
    of padding goes to the bottom / right)."""
    hw = [shapes[i] for i in ids]
    H = round_up(max(h for h, _ in hw), shape_round)
    W = round_up(max(w for _, w in hw), shape_round)
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
