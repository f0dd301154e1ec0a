"""The measured compute ceiling: a real subprocess per scope, and what the report makes of it."""
from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

from hrvs_ray.metrics.flags import CEILING_LIMIT, ceiling_note, step_ceilings
from hrvs_ray.node.node_info import ceiling_text
from hrvs_ray.probes.ceiling import measure_scope
from hrvs_ray.report.tables import _ceilings_text, _pct_ceiling


@pytest.mark.slow
def test_ceiling_runs_pinned_in_its_own_process_for_both_precisions():
    cpu = min(os.sched_getaffinity(0))
    c = measure_scope([cpu], 1, budget_s=1.0)
    assert "error" not in c, c
    assert c["affinity"] == [cpu] and c["cpus"] == [cpu] and c["threads"] == 1
    for p in ("fp32", "bf16"):
        assert c[f"{p}_gflops"] > 0 and c[f"{p}_kernel"].split()[0] in ("matmul", "conv1x1")
        assert c[f"{p}_gflops"] == max(c[f"{p}_all"].values())          # the faster kernel is kept
    assert ceiling_text(c).startswith("fp32 ")


def test_a_failed_ceiling_says_why():
    c = measure_scope([0], 1, budget_s=1.0, timeout_s=0.01)
    assert c["error"].startswith("ceiling probe failed: TimeoutExpired") and "not measured" in ceiling_text(c)


def _nodes() -> pd.DataFrame:
    ceilings = {"node": {"fp32_gflops": 200.0, "bf16_gflops": 800.0, "fp32_kernel": "conv1x1", "bf16_kernel": "matmul",
                         "threads": 2, "cpus": [0, 1]},
                "cores:1": {"error": "ceiling probe exited 1: boom", "cpus": [0]}}
    return pd.DataFrame({"cluster": ["c"], "node": ["n"], "ceilings": [json.dumps(ceilings)]})


def test_each_step_uses_its_scope_and_precisions_ceiling():
    steps = pd.DataFrame({"cluster": ["c", "c", "c", "c"], "node": ["n", "n", "n", "other"],
                          "scope": ["node", "node", "cores:1", "node"],
                          "precision": ["float32", "bfloat16", "float32", "float32"]})
    got = step_ceilings(steps, _nodes())
    assert got.iloc[0] == 200.0 and got.iloc[1] == 800.0 and math.isnan(got.iloc[2]) and math.isnan(got.iloc[3])
    assert step_ceilings(steps, _nodes().drop(columns="ceilings")).isna().all()      # schema 1/2 folders
    text = _ceilings_text(_nodes()["ceilings"][0])
    assert "200 / 800" in text and "not measured (ceiling probe exited 1: boom)" in text


def test_a_step_above_105_percent_of_its_ceiling_is_flagged_with_the_likely_cause():
    pct = pd.Series([80.0, 100 * CEILING_LIMIT, 152.0])
    note = ceiling_note(pct)
    assert note.startswith("1 timed steps ran above 105 % of their measured ceiling (up to 152 %)")
    assert "Winograd" in note and ceiling_note(pct.iloc[:2]) is None
    steps = pd.DataFrame({"flops": [1.52e9, 1.52e9], "seconds": [1.0, 1.0], "ceiling_flops_s": [1e9, 1e9]})
    assert _pct_ceiling(steps).cls == "flag"                     # Σ FLOPs ÷ Σ (s × ceiling) = 152 %
    assert _pct_ceiling(steps.assign(flops=0.99e9)) == "99.0"


@pytest.mark.slow
def test_the_report_flags_steps_above_their_ceiling(tmp_path):
    from hrvs_ray.report import build_report
    from hrvs_ray.report.load import load
    from hrvs_ray.report.tables import timed_with_peaks
    from tests.fixtures.report_results import make_results

    plain = make_results(tmp_path / "p", runs=1, steps=2, scopes=("node",), input_sets=("HR&VS",))
    t = timed_with_peaks(load([plain]))
    assert t["pct_ceiling"].isna().all()                 # no ceiling measured: n/a, never a guess
    top = float(t["gflops"].max())
    low = {"node": {"fp32_gflops": top / 2, "bf16_gflops": top / 2, "fp32_kernel": "matmul", "bf16_kernel": "matmul",
                    "threads": 1, "cpus": [0]}}
    flagged = make_results(tmp_path / "f", runs=1, steps=2, scopes=("node",), input_sets=("HR&VS",),
                           node_over={"ceilings": json.dumps(low)})
    html = build_report([flagged], tmp_path / "r.html").read_text()
    assert "of their measured ceiling" in html and "Winograd" in html and "% of measured ceiling" in html
