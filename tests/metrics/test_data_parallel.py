"""The data-parallel figures (hrvs_ray.metrics.data_parallel) on step rows built by hand:
straggler share and pixel imbalance per step and per group (ratios of sums), and scaling
efficiency against the 1-rank cell on the same images."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hrvs_ray.metrics.data_parallel import (
    is_data_parallel,
    matched_steps,
    pixel_imbalance,
    scaling_efficiency,
    setup_label,
    step_pixel_imbalance,
    step_straggler_share,
    straggler_share,
)
from hrvs_ray.remedy_axes import PAPER, Remedy


def _dp(compute, seconds, px, ranks=2, run=0, first_step=1):
    n = len(seconds)
    return pd.DataFrame({"run": [run] * n, "step": range(first_step, first_step + n), "warmup": [False] * n,
                         "seconds": seconds, "ranks": [ranks] * n, "rank_compute_seconds": compute,
                         "rank_px": px, "informative_px": [1_000_000 * (i + 1) for i in range(n)],
                         "total_px": [int(sum(p)) for p in px], "scope": ["2*cores:1"] * n})


def test_straggler_share_per_step_and_per_group_is_a_ratio_of_sums():
    d = _dp([np.array([1.0, 0.5]), [2.0, 2.0], [3.0, 1.0]], [1.2, 2.1, 3.3], [[4, 2], [5, 5], [9, 3]])
    per_step = step_straggler_share(d).to_list()
    assert per_step == pytest.approx([0.5 / (2 * 1.2), 0.0, 2.0 / (2 * 3.3)])
    # Σ idle ÷ Σ ranks × seconds, not the mean of the steps' shares
    assert straggler_share(d) == pytest.approx((0.5 + 0 + 2.0) / (2 * (1.2 + 2.1 + 3.3)))
    assert straggler_share(d) != pytest.approx(float(np.mean(per_step)))


def test_pixel_imbalance_per_step_and_per_group_is_a_ratio_of_sums():
    d = _dp([[1.0, 1.0]] * 3, [1.0] * 3, [[4, 2], [5, 5], [9, 3]])
    assert step_pixel_imbalance(d).to_list() == pytest.approx([4 / 3, 1.0, 9 / 6])
    assert pixel_imbalance(d) == pytest.approx((4 + 5 + 9) / (3 + 5 + 6))


def test_single_rank_steps_have_no_data_parallel_figures():
    one = pd.DataFrame({"seconds": [1.0, 2.0], "rank_compute_seconds": [None, None], "rank_px": [None, None],
                        "ranks": [1, 1], "scope": ["cores:1"] * 2})
    assert step_straggler_share(one).isna().all() and step_pixel_imbalance(one).isna().all()
    assert math.isnan(straggler_share(one)) and math.isnan(pixel_imbalance(one))
    assert not is_data_parallel(one).any()
    assert is_data_parallel(pd.DataFrame({"scope": ["2*cores:1", "node"]})).to_list() == [True, False]


def test_scaling_efficiency_is_strong_scaling_over_the_steps_on_the_same_images():
    dp = _dp([[1.0, 1.0]] * 3, [0.7, 0.8, 0.9], [[1, 1]] * 3)
    one = dp.assign(seconds=[1.0, 1.2, 1.5, ], ranks=1, scope="cores:1")
    extra = one.iloc[:1].assign(step=9, seconds=50.0)       # a step the data-parallel cell did not run
    a, b = matched_steps(pd.concat([one, extra]), dp)
    assert list(a["step"]) == list(b["step"]) == [1, 2, 3]
    iv = scaling_efficiency(pd.concat([one, extra]), dp, 2)
    assert iv.value == pytest.approx((1.0 + 1.2 + 1.5) / (2 * (0.7 + 0.8 + 0.9)))
    assert iv.low <= iv.value <= iv.high
    assert "strong scaling" in iv.basis


def test_the_setup_of_a_row_sets_its_split_aside():
    assert setup_label(Remedy(split="balanced").to_row()) == PAPER.label
    assert setup_label({**Remedy(precision="bfloat16", split="uniform").to_row()}) == \
        Remedy(precision="bfloat16").label
