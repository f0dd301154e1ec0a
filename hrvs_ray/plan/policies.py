"""Batching policies: which images form each optimizer step, and how they are padded.

Pure: numpy only, no torch, no ray. Every policy trains on the images of ``pad``'s steps
(the paper's seeded permutation, ``seeded_order.batch_indices``): a cell's warm-up steps on
``pad``'s warm-up images and its timed steps on ``pad``'s timed images, so cells that differ
only in their remedy are measured on the same images (plan version 2). The policies differ
only in how they group those images:

- ``pad``: the paper. Consecutive slices of the permutation, zero-padded to the batch's
  largest image.
- ``bucket``: padding-aware. ``pad``'s batches (of the warm-up, or of the timed steps) are
  cut into windows of at most ``window`` batches (never across an epoch boundary, so no
  batch holds an image twice); inside a window the images are sorted by shape and cut
  into batches there, so similar shapes share a batch; then the batches' order is
  shuffled with the seed. Over a full epoch (``epoch_indices``) the same regrouping runs
  on all of the epoch's batches: that is what real training with ``bucket`` sees.
  Sort key, ascending: the aspect class (height / width in quarter-octave bins: class k
  holds ratios in [2^(k/4), 2^((k+1)/4)), computed exactly in integers so no platform's
  rounding can move an image), then the area (height × width), then the image's index in
  the sorted id list: a total order, nothing is left to the sort algorithm.

  Why bins and not the exact ratio: with exact ratios, equal areas almost never meet, and
  on the real MAMe train metadata (2,000 batches) HR&VS keeps 50 % padding; quarter-octave
  classes let similar sizes meet inside a class: MR&VS 78 % -> 10 %, HR&VS 54 % -> 33 %.
- ``accumulate``: the paper's batches (the same ids per optimizer step as ``pad``), each
  split in order into micro-batches of ``micro_batch`` images, each padded only to its own
  largest image; gradients of the micro-batches are summed into one optimizer step.
"""
from __future__ import annotations

import numpy as np

from ..remedy_axes import Remedy
from .padding import pixel_stats
from .seeded_order import batch_indices, epoch_permutation

BUCKET_SHUFFLE = 2_000_003   # purpose tag: the bucket policy's batch-order shuffle
PAIRED_PARTS = (2_000_011, 2_000_029)   # purpose tags: shuffles of the warm-up / the timed steps


def regroup(rows: np.ndarray, epochs: np.ndarray, heights: np.ndarray, widths: np.ndarray, window: int,
            shuffle_seed: np.random.SeedSequence) -> np.ndarray:
    """``bucket``'s regrouping of ``rows`` ((k, batch_size) indices: ``pad``'s batches, with
    ``epochs[i]`` the epoch row i was drawn from): the same images, shape-sorted inside
    windows of at most ``window`` consecutive batches of one epoch, in a seeded batch order."""
    if window < 1:
        raise ValueError("window must be >= 1")
    if len(rows) == 0:
        return rows.copy()
    h = np.asarray(heights, dtype=np.int64)
    w = np.asarray(widths, dtype=np.int64)
    batch_size = rows.shape[1]
    out = []
    for e in np.unique(epochs):               # ascending: the order pad drew them in
        block = rows[epochs == e]
        for start in range(0, len(block), window):
            chunk = block[start:start + window].ravel()
            ch, cw = h[chunk], w[chunk]
            order = np.lexsort((chunk, ch * cw, aspect_class(ch, cw)))   # last key is the primary one
            out.append(chunk[order].reshape(-1, batch_size))
    grouped = np.concatenate(out)
    return grouped[np.random.Generator(np.random.PCG64(shuffle_seed)).permutation(len(grouped))]


def aspect_class(heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """floor(4 × log2(height / width)) per image, exact: k such that
    w⁴·2^k <= h⁴ < w⁴·2^(k+1), decided on Python integers (no libm, no float rounding)."""
    out = np.empty(len(heights), dtype=np.int64)
    for i, (h, w) in enumerate(zip(np.asarray(heights).tolist(), np.asarray(widths).tolist(), strict=False)):
        a, b = int(h) ** 4, int(w) ** 4
        k = a.bit_length() - b.bit_length()    # floor(log2(a / b)) is k or k - 1
        if (a << max(0, -k)) < (b << max(0, k)):
            k -= 1
        out[i] = k
    return out


def step_indices(remedy: Remedy, heights: np.ndarray, widths: np.ndarray, seed: int, run: int,
                 batch_size: int, n_batches: int, warmup_steps: int = 0) -> np.ndarray:
    """(n_batches, batch_size) indices into the sorted id list: the images of each optimizer
    step under ``remedy``'s batching policy. The first ``warmup_steps`` steps hold exactly
    the images of ``pad``'s first ``warmup_steps`` steps, the others those of ``pad``'s
    others (``heights``/``widths``: shapes after the input set's resize)."""
    pad = batch_indices(len(heights), seed, run, batch_size, n_batches)
    if remedy.batching != "bucket":
        return pad
    epochs = np.arange(len(pad)) // (len(heights) // batch_size)
    cut = min(max(0, warmup_steps), len(pad))
    parts = [regroup(pad[sl], epochs[sl], heights, widths, remedy.window,
                     np.random.SeedSequence([seed, run, tag, BUCKET_SHUFFLE]))
             for sl, tag in zip((slice(0, cut), slice(cut, None)), PAIRED_PARTS, strict=False)]
    return np.concatenate(parts)


def epoch_indices(remedy: Remedy, heights: np.ndarray, widths: np.ndarray, seed: int, run: int,
                  batch_size: int, epoch: int = 0) -> np.ndarray:
    """Every batch of one full epoch under ``remedy`` (``pad``'s epoch regrouped for
    ``bucket``): what training a whole epoch sees, as opposed to a cell's sampled steps."""
    per_epoch = len(heights) // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} exceeds the {len(heights)} images available")
    pad = epoch_permutation(len(heights), seed, run, epoch)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
    if remedy.batching != "bucket":
        return pad
    return regroup(pad, np.zeros(per_epoch, dtype=np.int64), heights, widths, remedy.window,
                   np.random.SeedSequence([seed, run, epoch, BUCKET_SHUFFLE]))


def micro_slices(batch_size: int, remedy: Remedy) -> list[slice]:
    """How one optimizer step's images are split into forward/backward passes: one pass
    for ``pad`` and ``bucket``; consecutive groups of ``micro_batch`` for ``accumulate``
    (the last group smaller when ``micro_batch`` does not divide the batch)."""
    if remedy.batching != "accumulate":
        return [slice(0, batch_size)]
    mb = max(1, remedy.micro_batch)
    return [slice(s, min(s + mb, batch_size)) for s in range(0, batch_size, mb)]


def step_pixel_stats(heights: np.ndarray, widths: np.ndarray, idx: np.ndarray,
                     remedy: Remedy) -> dict[str, np.ndarray]:
    """Per optimizer step: informative / padding / total pixels summed over its passes, and
    ``largest_pass`` (total pixels of its largest single pass, which sets the memory peak).
    Each pass is padded up to a multiple of ``remedy.shape_round`` px when it is set."""
    parts = [pixel_stats(heights, widths, idx[:, s], remedy.shape_round) for s in micro_slices(idx.shape[1], remedy)]
    out = {k: np.sum([p[k] for p in parts], axis=0) for k in ("informative", "padding", "total")}
    out["largest_pass"] = np.max([p["total"] for p in parts], axis=0)
    return out
