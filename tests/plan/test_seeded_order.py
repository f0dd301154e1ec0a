"""Seeded batch order: a function of ids, seed, run and batch size only, in any process."""
from __future__ import annotations

import random
import subprocess
import sys

from hrvs_ray.plan.seeded_order import batch_order

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
