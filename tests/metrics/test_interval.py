"""The one statistic (ratio of sums) and the intervals on its ratios: seeded simulations
whose truth is known, so coverage and power are checked, not just shapes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hrvs_ray.metrics import figure, figures, group_figures
from hrvs_ray.metrics.interval import ratio_interval, small_sample_factor, value_interval, verdict
from hrvs_ray.metrics.noise import run_spread


def steps(n: int, runs: int = 1, speed: float = 1.0, noise: float = 0.05, seed: int = 0, run_noise: float = 0.0,
          batches_seed: int = 100) -> pd.DataFrame:
    """Simulated timed steps: the batches (pixels, fingerprints) depend on ``batches_seed``
    only, the time on ``seed``: seconds = speed × MP × lognormal step noise × a run offset."""
    b = np.random.default_rng(batches_seed)
    r = np.random.default_rng(seed)
    rows = []
    for run in range(runs):
        offset = np.exp(r.normal(0, run_noise))
        for s in range(n):
            px = int(b.integers(100_000, 2_000_000))
            pad = int(px * b.uniform(0, 0.6))
            rows.append(dict(run=run, step=s + 1, warmup=False, batch_fingerprint=f"{run}.{s}.{px}",
                             total_px=px, informative_px=px - pad, padding_px=pad, growth_bytes=400 * px,
                             peak_rss_bytes=10**9 + 400 * px,
                             seconds=speed * offset * px / 1e6 * np.exp(r.normal(0, noise))))
    return pd.DataFrame(rows)


def test_group_figures_are_ratios_of_sums_not_means_of_ratios() -> None:
    d = pd.DataFrame(dict(run=0, step=[1, 2], warmup=False, seconds=[1.0, 9.0], total_px=[1e6, 2e6],
                          informative_px=[0.5e6, 2e6], padding_px=[0.5e6, 0], peak_rss_bytes=[5, 7]))
    f = figures(d)
    assert f["s_per_mp"] == pytest.approx(10 / 3)                 # mean of ratios would be 5.25
    assert f["s_per_informative_mp"] == pytest.approx(10 / 2.5)   # 5.5
    assert f["padding_fraction"] == pytest.approx(0.5 / 3)       # 0.25
    assert f["peak_rss_bytes"] == 7 and f["steps"] == 2
    g = group_figures(pd.concat([d.assign(k="a"), d.assign(k="b", warmup=[True, False])]), ["k"])
    assert g.set_index("k").loc["b", "s_per_mp"] == pytest.approx(9 / 2)  # warm-up excluded


def test_interval_is_deterministic_and_independent_of_row_order() -> None:
    a, b = steps(6, seed=1), steps(6, seed=2)
    one = ratio_interval(a, b)
    assert ratio_interval(a.sample(frac=1, random_state=3), b.iloc[::-1]) == one
    assert one.low <= one.value <= one.high
    assert one.value == pytest.approx(figure(a, "s_per_informative_mp") / figure(b, "s_per_informative_mp"))


@pytest.mark.parametrize("n", [3, 10])
@pytest.mark.slow
def test_aa_false_positives_at_most_about_5_percent(n: int) -> None:
    # the same batches measured twice, each one run: how often is a difference claimed?
    claims = sum(not ratio_interval(steps(n, seed=2 * i), steps(n, seed=2 * i + 1)).includes_one
                 for i in range(300))
    assert claims / 300 <= 0.07  # a plain percentile bootstrap of 3 steps claims ~25 %


def test_a_real_difference_is_found_and_named() -> None:
    iv = ratio_interval(steps(10, speed=1.3, seed=1), steps(10, seed=2), "s_per_mp")
    assert iv.low > 1 and verdict(iv) == "slower"
    iv = ratio_interval(steps(10, speed=0.7, seed=1), steps(10, seed=2), "s_per_mp")
    assert iv.high < 1 and verdict(iv) == "faster"
    same = ratio_interval(steps(3, seed=1), steps(3, seed=2), "s_per_mp")
    assert verdict(same) == "no measurable difference with 6 steps"


@pytest.mark.slow
def test_run_to_run_variation_counts_when_runs_differ() -> None:
    # run offsets of 10 %: the interval must cover them, not just the steps' noise
    a = steps(10, runs=4, seed=1, run_noise=0.10)
    b = steps(10, runs=4, seed=2, run_noise=0.10)
    runs = ratio_interval(a, b)
    pooled = ratio_interval(a.assign(run=0, step=range(len(a))), b.assign(run=0, step=range(len(b))))
    # same runs, same (empty) stratum: paired, cell + run fitted, (2 - 1) × (4 - 1) degrees of freedom
    assert "4 and 4 runs: paired, run-to-run spread σ = " in runs.basis and "(3 degrees of freedom" in runs.basis
    assert np.log(runs.high / runs.low) > 1.5 * np.log(pooled.high / pooled.low)
    claims = sum(not ratio_interval(steps(5, runs=3, seed=2 * i, run_noise=0.1),
                                    steps(5, runs=3, seed=2 * i + 1, run_noise=0.1)).includes_one for i in range(100))
    assert claims <= 8  # A/A with whole-run offsets: still about 5 %


def test_run_to_run_spread_of_other_groups_widens_one_run_groups() -> None:
    many = pd.concat([steps(5, runs=3, seed=s, run_noise=0.08).assign(g=s) for s in range(4)])
    sd = run_spread(many, ["g"], "s_per_informative_mp")
    assert sd is not None and 0.02 < sd.oneway[()].sd < 0.2 and sd.oneway[()].df == 4 * (3 - 1)
    assert run_spread(steps(5).assign(g=0), ["g"]) is None  # one run everywhere: unknown
    a, b = steps(8, seed=1), steps(8, seed=2)
    plain, wide = ratio_interval(a, b), ratio_interval(a, b, run_sd=sd)
    assert "step-to-step noise only" in plain.basis and "run-to-run spread" in wide.basis
    assert wide.low < plain.low and wide.high > plain.high


@pytest.mark.slow
def test_a_known_spread_is_not_swamped_by_few_steps_and_keeps_aa_at_5_percent() -> None:
    # 3 timed steps per run with 30 % step noise (a busy machine), 2 runs per group, whole-run
    # offsets of 8 %: the spread pooled over the sweep's other groups (df 20) sets the
    # interval. Before, the steps' bootstrap was widened by the t of ~1 degree of freedom and
    # added on top: intervals thousands of times wide, which can never find anything.
    def group(seed: int, speed: float = 1.0) -> pd.DataFrame:
        return steps(3, runs=2, seed=seed, speed=speed, noise=0.3, run_noise=0.08)
    others = pd.concat([group(1000 + g).assign(g=g) for g in range(20)])
    spread = run_spread(others, ["g"], "s_per_informative_mp")
    one = spread.oneway[()] if spread is not None else None
    assert one is not None and one.df == 20 and 0.05 < one.sd < 0.4   # offsets + each run's batches
    same = [ratio_interval(group(2 * i), group(2 * i + 1), run_sd=spread) for i in range(300)]
    assert sum(not iv.includes_one for iv in same) / 300 <= 0.08
    assert max(iv.high / iv.low for iv in same) < 5.0     # the old way: up to 14x here
    found = [ratio_interval(group(2 * i, speed=3.0), group(2 * i + 1), run_sd=spread) for i in range(50)]
    assert sum(iv.low > 1 for iv in found) >= 45      # a 3x difference is found


def test_identical_batches_are_redrawn_together() -> None:
    # paired: the batches' very different sizes cancel, the interval is the noise's only
    a, b = steps(8, seed=1), steps(8, seed=2)
    paired = ratio_interval(a, b)
    unpaired = ratio_interval(a, b.assign(batch_fingerprint="other"))
    assert paired.basis.startswith("same batches") and not unpaired.basis.startswith("same batches")
    v, lo, hi = value_interval(a, "s_per_mp")
    assert lo < v < hi


def test_small_sample_factor_is_the_t_correction() -> None:
    assert small_sample_factor(3) == pytest.approx(4.303 / 1.959964 * np.sqrt(1.5), rel=1e-3)
    assert small_sample_factor(31) == pytest.approx(2.042 / 1.959964 * np.sqrt(31 / 30), rel=2e-3)
    # a fractional count's degrees of freedom are rounded down (1.5 -> 1): wider, never interpolated
    assert small_sample_factor(2.5) == pytest.approx(12.706 / 1.959964 * np.sqrt(2.5 / 1.5), rel=1e-3)
    assert small_sample_factor(1000) == pytest.approx(1.0, abs=0.01)


def test_two_unequal_steps_still_give_a_wide_finite_interval() -> None:
    # a smoke sweep's 2 timed steps: Kish's count is below 2, the t of one degree of freedom applies
    a, b = steps(2, seed=1), steps(2, seed=2)
    iv = ratio_interval(a, b)
    assert np.isfinite(iv.low) and np.isfinite(iv.high) and iv.low < iv.value < iv.high
    assert small_sample_factor(2) > 9
