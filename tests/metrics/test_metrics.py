"""``metrics.derive`` (per-step ratios) and the statistics beside it, against figures computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hrvs_ray.metrics import cell_s_per_mp, cv, derive, ratio_of_sums, variability

DERIVED = ["s_per_mp", "s_per_informative_mp", "ipc", "instructions_per_mp", "instructions_per_informative_mp",
           "mpki", "gflops", "padding_fraction", "steal_share"]


def _steps(**cols) -> pd.DataFrame:
    base = {"warmup": [False], "seconds": [2.0], "total_px": [4_000_000], "informative_px": [3_000_000],
            "padding_px": [1_000_000], "instructions": [8_000_000_000], "cycles": [4_000_000_000],
            "llc_misses": [2_000_000], "flops": [50_000_000_000], "cores": [4], "steal_seconds": [0.4]}
    base.update(cols)
    return pd.DataFrame(base)


def test_each_derived_column_by_hand():
    d = derive(_steps()).iloc[0]
    expected = {"s_per_mp": 2.0 / 4, "s_per_informative_mp": 2.0 / 3, "ipc": 8e9 / 4e9,
                "instructions_per_mp": 8e9 / 4, "instructions_per_informative_mp": 8e9 / 3,
                "mpki": 2e6 * 1000 / 8e9, "gflops": 50 / 2.0, "padding_fraction": 0.25,
                "steal_share": 0.4 / (2.0 * 4)}
    assert {k: d[k] for k in DERIVED} == pytest.approx(expected, rel=1e-12)


def test_rows_are_independent_and_the_input_is_not_changed():
    s = _steps(warmup=[True, False], seconds=[1.0, 3.0], total_px=[1_000_000, 2_000_000],
               informative_px=[1_000_000, 500_000], padding_px=[0, 1_500_000], instructions=[10, 30],
               cycles=[20, 10], llc_misses=[1, 3], flops=[2_000_000_000, 3_000_000_000], cores=[1, 2],
               steal_seconds=[0.5, 0.0])
    before = s.copy()
    d = derive(s)
    pd.testing.assert_frame_equal(s, before)
    assert list(d["s_per_mp"]) == pytest.approx([1.0, 1.5])
    assert list(d["s_per_informative_mp"]) == pytest.approx([1.0, 6.0])
    assert list(d["ipc"]) == pytest.approx([0.5, 3.0])
    assert list(d["mpki"]) == pytest.approx([100.0, 100.0])
    assert list(d["gflops"]) == pytest.approx([2.0, 1.0])
    assert list(d["padding_fraction"]) == pytest.approx([0.0, 0.75])
    assert list(d["steal_share"]) == pytest.approx([0.5, 0.0])


@pytest.mark.parametrize("column, value, gone", [
    ("cycles", 0, ["ipc"]),
    ("cycles", None, ["ipc"]),
    ("instructions", 0, ["mpki"]),
    ("instructions", None, ["ipc", "instructions_per_mp", "instructions_per_informative_mp", "mpki"]),
    ("llc_misses", None, ["mpki"]),
    ("informative_px", 0, ["s_per_informative_mp", "instructions_per_informative_mp"]),
    ("total_px", 0, ["s_per_mp", "instructions_per_mp", "padding_fraction"]),
    ("seconds", 0, ["gflops", "steal_share"]),
    ("flops", None, ["gflops"]),
    ("seconds", -1.0, ["gflops", "steal_share"]),   # a clock that ran backwards is no denominator either
    ("cores", 0, ["steal_share"]),
    ("steal_seconds", None, ["steal_share"]),
])
def test_a_zero_or_missing_input_nulls_exactly_the_figures_that_use_it(column, value, gone):
    s = _steps(**{column: pd.array([value], dtype="Float64" if column in ("seconds", "steal_seconds") else "Int64")})
    d = derive(s).iloc[0]
    assert [k for k in DERIVED if pd.isna(d[k])] == sorted(gone, key=DERIVED.index)
    assert all(not np.isinf(d[k]) for k in DERIVED if not pd.isna(d[k]))


def test_derived_columns_are_plain_floats_even_from_nullable_integers():
    s = _steps(instructions=pd.array([8_000_000_000], dtype="Int64"), cycles=pd.array([None], dtype="Int64"))
    d = derive(s)
    assert all(d[k].dtype == np.float64 for k in DERIVED)


def test_ratio_of_sums_and_cv():
    assert ratio_of_sums([1.0, 2.0], [1e6, 3e6], 1e6) == pytest.approx(0.75)     # not mean(1, 2/3)
    assert ratio_of_sums([1.0, 2.0, 5.0], [1e6, None, 1e6], 1e6) == pytest.approx(3.0)   # pairs both known
    assert math.isnan(ratio_of_sums([1.0], [0.0])) and math.isnan(ratio_of_sums([], []))
    assert cv([2.0, 4.0]) == pytest.approx(math.sqrt(2) / 3)
    assert math.isnan(cv([5.0])) and math.isnan(cv([0.0, 0.0]))


def test_a_cells_s_per_mp_is_over_its_timed_steps():
    s = _steps(warmup=[True, False, False], seconds=[100.0, 1.0, 3.0], total_px=[1_000_000, 1_000_000, 2_000_000],
               informative_px=[1] * 3, padding_px=[0] * 3, instructions=[1] * 3, cycles=[1] * 3,
               llc_misses=[0] * 3, flops=[1] * 3, cores=[1] * 3, steal_seconds=[0.0] * 3)
    assert cell_s_per_mp(s) == pytest.approx(4.0 / 3)       # Σ seconds ÷ Σ MP, warm-up left out
    assert cell_s_per_mp(s.iloc[:1]) is None


def test_variability_per_group_across_runs():
    rows = []
    for run, seconds in ((0, [1.0, 3.0]), (1, [2.0, 2.0])):
        for i, v in enumerate(seconds):
            rows.append({"cluster": "c", "scope": "node", "input_set": "a", "remedy": "pad+fp32+nchw", "run": run,
                         "warmup": False, "seconds": v, "total_px": 1_000_000, "step": i})
    rows.append(dict(rows[0], warmup=True, seconds=50.0))
    v = variability(pd.DataFrame(rows)).iloc[0]
    # each run's figure is 4 s / 2 MP = 2.0: no run-to-run spread
    assert (v["runs"], v["steps"], v["value"], v["run_cv"], v["above_limit"]) == (2, 4, 2.0, 0.0, False)
    rows[2]["seconds"] = rows[3]["seconds"] = 3.0            # runs 2.0 and 3.0: cv 0.28 > 6 %
    v = variability(pd.DataFrame(rows)).iloc[0]
    assert v["run_cv"] == pytest.approx(math.sqrt(0.5) / 2.5) and bool(v["above_limit"])
