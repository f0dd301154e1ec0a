"""The statistics behind compare's gate and the report's claims (hrvs_ray.metrics.stats):
exact t quantiles, Holm, the stratum spreads, four verdicts, and seeded simulations whose
truth is known: the family-wise false-alarm rate, the power, and winners chosen from data."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hrvs_ray.metrics.stats import (
    EQUIVALENT,
    FASTER,
    INCONCLUSIVE,
    SLOWER,
    Contrast,
    chi2_sf,
    choose,
    contrast,
    detectable,
    holm,
    oneway,
    t_ppf,
    t_sf,
    twoway,
    verdicts,
)

# quick's shape: 3 scopes per input set (one stratum each), run noise by input set
QUICK_NOISE = {"LR&FS": 0.03, "MR&VS": 0.12, "HR&VS": 0.06}
SCOPES = 3


def test_t_quantiles_are_exact_and_fractional_df_rounds_down() -> None:
    # reference values (R qt / published tables)
    assert t_ppf(0.975, 1) == pytest.approx(12.7062047, rel=1e-7)
    assert t_ppf(0.975, 2) == pytest.approx(4.3026527, rel=1e-7)
    assert t_ppf(0.975, 5) == pytest.approx(2.5705818, rel=1e-7)
    assert t_ppf(0.99, 3) == pytest.approx(4.5407029, rel=1e-7)
    assert t_ppf(0.975, 30) == pytest.approx(2.0422725, rel=1e-7)
    assert t_ppf(0.025, 7) == pytest.approx(-2.3646243, rel=1e-7)
    # the old table interpolated df 1.5 to 8.50; the t of 1.5 df is 6.02: never narrower than
    # the truth, we take the whole degrees below (1 -> 12.71)
    assert t_ppf(0.975, 1.5) == t_ppf(0.975, 1) > 6.02
    assert t_ppf(0.975, 2.9) == t_ppf(0.975, 2)
    assert t_sf(2.0, 10) == pytest.approx(0.036694017, rel=1e-7)
    assert t_sf(-2.0, 10) == pytest.approx(1 - 0.036694017, rel=1e-7)
    assert t_ppf(0.975, 100_000) == pytest.approx(1.959986, rel=1e-5)
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, rel=1e-5)
    assert chi2_sf(11.070498, 5) == pytest.approx(0.05, rel=1e-5)
    with pytest.raises(ValueError):
        t_ppf(0.975, 0.5)


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.2, float("nan"), 0.01])
    assert out[0] == pytest.approx(0.2) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_twoway_spread_removes_what_a_run_shares() -> None:
    # every cell of run r shares an offset (its images): one-way counts it, two-way does not
    rng = np.random.default_rng(1)
    shared = {r: rng.normal(0, 0.2) for r in range(4)}
    cells = {c: {r: shared[r] + rng.normal(0, 0.01) for r in range(4)} for c in range(6)}
    one, two = oneway(cells), twoway(cells)
    assert one is not None and two is not None
    assert one.df == 6 * 3 and two.df == 5 * 3
    assert one.sd > 0.1 and two.sd < 0.02


def test_verdicts_are_four_and_corrected() -> None:
    cs = [Contrast(math.log(1.3), 0.02, 6, ""), Contrast(math.log(0.7), 0.02, 6, ""),
          Contrast(0.0, 0.005, 20, ""), Contrast(0.0, 0.2, 2, "")]
    v = verdicts(cs, 0.05)
    assert [t.verdict for t in v] == [SLOWER, FASTER, EQUIVALENT, INCONCLUSIVE]
    assert all(t.adj_slower >= t.p_slower for t in v)
    # a 1.3× slowdown that passes alone is held back when 30 other tests share the family
    weak = Contrast(math.log(1.3), 0.06, 3, "")
    assert verdicts([weak], 0.05)[0].verdict == SLOWER
    assert verdicts([weak] + [Contrast(0.0, 0.06, 3, "")] * 30, 0.05)[0].verdict == INCONCLUSIVE


def test_minimum_detectable_effect_grows_with_noise_and_family() -> None:
    base = detectable(0.03, 5, 9, 0.05)
    assert 1.05 < base < detectable(0.06, 5, 9, 0.05) and base < detectable(0.03, 5, 27, 0.05)
    assert math.isnan(detectable(float("nan"), 0, 9, 0.05))


def _quick_draw(rng: np.random.Generator, slow: float = 1.0) -> bool:
    """One A/A (or A/B) pair of quick-shaped folders as compare tests it: per input set one
    stratum of 3 scopes × 2 sides × 2 runs, spread paired on the runs (two-way fit), each
    group's contrast; plus one peak-memory test per group (own 2 % spread), all 18 corrected
    together. ``slow``: the true ratio of the first LR&FS group. True when compare exits 1."""
    cs = []
    for name, sd in QUICK_NOISE.items():
        for metric_sd in (sd, 0.02):   # time, then memory: each with its own spread
            cells = {}
            for g in range(SCOPES):
                for side in (0, 1):
                    eff = math.log(slow) if (metric_sd == sd and name == "LR&FS" and g == 0 and side == 1) else 0.0
                    cells[(g, side)] = {r: eff + rng.normal(0, metric_sd) for r in range(2)}
            paired = twoway(cells)
            for g in range(SCOPES):
                new, base = [cells[(g, 1)][r] for r in range(2)], [cells[(g, 0)][r] for r in range(2)]
                cs.append(contrast(new, base, oneway(cells), paired=paired))
    return any(t.verdict == SLOWER for t in verdicts(cs, 0.05, 0.05))


@pytest.mark.slow
def test_quick_shaped_aa_pairs_rarely_fail_and_a_slowdown_is_caught() -> None:
    rng = np.random.default_rng(26)
    draws = 2000
    aa = sum(_quick_draw(rng) for _ in range(draws)) / draws
    power = sum(_quick_draw(rng, slow=1.3) for _ in range(draws)) / draws
    assert aa <= 0.05, aa            # before: 26-31 % of A/A pairs failed
    assert power >= 0.90, power


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 6, 24])
def test_a_winner_among_equals_is_claimed_at_most_5_percent(k: int) -> None:
    # every candidate truly equal, 2 runs each, one spread (pooled, df k): how often is a
    # fastest claimed? The old way sorted by value, then gave the pair an ordinary interval.
    rng = np.random.default_rng(k)
    draws, claims = 2000, 0
    for _ in range(draws):
        cells = {c: {r: rng.normal(0, 0.05) for r in range(2)} for c in range(k)}
        sp = oneway(cells)
        logs = {str(c): float(np.mean(list(v.values()))) for c, v in cells.items()}
        def versus(a: str, b: str) -> Contrast:
            return contrast([cells[int(a)][r] for r in range(2)], [cells[int(b)][r] for r in range(2)], sp)  # noqa: B023
        claims += choose({n: math.exp(v) for n, v in logs.items()}, versus).claimed
    assert claims / draws <= 0.05, claims / draws


def test_a_clear_winner_is_claimed_and_ties_are_named_as_a_set() -> None:
    sp_cells = {c: {0: 0.0, 1: 0.01 * (-1) ** c} for c in range(4)}
    sp = oneway(sp_cells)
    logs = {"a": math.log(1.0), "b": math.log(1.5), "c": math.log(1.6)}

    def versus(vals: dict[str, float]):
        return lambda x, y: contrast([vals[x]] * 2, [vals[y]] * 2, sp, log_ratio=vals[x] - vals[y])
    got = choose({n: math.exp(v) for n, v in logs.items()}, versus(logs))
    assert got.claimed and got.best == "a" and got.sentence(12) == "a"
    close = {"a": 0.0, "b": 0.001, "c": math.log(1.6)}
    got = choose({n: math.exp(v) for n, v in close.items()}, versus(close))
    assert not got.claimed and got.tied == ("a", "b")
    assert got.sentence(12) == "a and b cannot be told apart with 12 steps"
