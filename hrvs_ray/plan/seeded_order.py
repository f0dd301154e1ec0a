"""Seeded image orders: which images each batch of a run holds, before any policy regroups
them. Pure: numpy only, no torch, no ray.

The order is a function of (image ids, seed, run, batch size) alone. Ids are sorted first,
so the order rows come in from a CSV or a directory listing cannot change a batch, and the
permutation comes from numpy's PCG64 seeded by a SeedSequence, which is specified
bit-for-bit and does not depend on thread count or platform. The batching policies that
regroup these orders live in :mod:`.policies`; padding geometry in :mod:`.padding`.
"""
from __future__ import annotations

from collections.abc import Sequence

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
