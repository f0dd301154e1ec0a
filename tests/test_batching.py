from __future__ import annotations

import random
import subprocess
import sys

import numpy as np

from hrvs_ray.plan.padding import geometry, pixel_stats
from hrvs_ray.plan.seeded_order import batch_indices, batch_order

IDS = [f"img{i:03d}.jpg" for i in range(50)]


def test_plan_is_a_function_of_ids_seed_run_and_size_only():
    shuffled = IDS[:]
    random.Random(3).shuffle(shuffled)
    a = batch_order(IDS, seed=5, run=0, batch_size=4, n_batches=30)
    assert a == batch_order(shuffled, seed=5, run=0, batch_size=4, n_batches=30)
    assert a != batch_order(IDS, seed=5, run=1, batch_size=4, n_batches=30)
    assert a != batch_order(IDS, seed=6, run=0, batch_size=4, n_batches=30)
    # 30 batches of 4 need 3 epochs of 12 batches; no batch repeats an id
    assert all(len(set(b)) == 4 for b in a)


def test_plan_is_identical_in_another_process_with_other_thread_settings():
    code = ("from hrvs_ray.plan.seeded_order import batch_order;"
            f"print(batch_order({IDS!r}, 11, 2, 8, 7))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"OMP_NUM_THREADS": n, "PATH": "/usr/bin"}).stdout for n in ("1", "2")}
    assert len(outs) == 1
    assert outs.pop().strip() == str(batch_order(IDS, 11, 2, 8, 7))


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
