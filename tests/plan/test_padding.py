"""Padding geometry: centred placements and exact pixel accounting, vectorised and per batch."""
from __future__ import annotations

import numpy as np

from hrvs_ray.plan.padding import geometry, pixel_stats
from hrvs_ray.plan.seeded_order import batch_indices


def test_padding_is_centred_and_accounted():
    shapes = {"a": (10, 20), "b": (15, 5), "c": (15, 20)}
    g = geometry(["a", "b", "c"], shapes)
    assert (g.height, g.width) == (15, 20)
    pa, pb, pc = g.placements
    assert (pa.top, pa.left) == (2, 0)        # (15-10)//2: odd pixel goes below
    assert (pb.top, pb.left) == (0, 7)
    assert (pc.top, pc.left) == (0, 0)
    assert g.informative_px == 200 + 75 + 300
    assert g.total_px == 3 * 15 * 20
    assert g.padding_px == g.total_px - g.informative_px


def test_vectorised_stats_match_geometry():
    rng = np.random.default_rng(0)
    h = rng.integers(10, 100, 40)
    w = rng.integers(10, 100, 40)
    idx = batch_indices(40, 1, 0, 5, 9)
    stats = pixel_stats(h, w, idx)
    ids = [str(i) for i in range(40)]
    shapes = {str(i): (int(h[i]), int(w[i])) for i in range(40)}
    for row, inf, tot in zip(idx, stats["informative"], stats["total"], strict=False):
        g = geometry([ids[i] for i in row], shapes)
        assert (g.informative_px, g.total_px) == (inf, tot)
