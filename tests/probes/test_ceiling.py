"""The measured compute ceiling: a real subprocess per scope, and what the report makes of it."""
from __future__ import annotations

import json
import math
import os
import time

import pandas as pd
import pytest

from hrvs_ray.metrics.flags import CEILING_LIMIT, ceiling_note, ceiling_notes, step_ceilings
from hrvs_ray.node.node_info import ceiling_text
from hrvs_ray.probes.ceiling import AGREE, best_three_spread, drift, measure_scope, stable_rate
from hrvs_ray.report.tables import _ceilings_text, _pct_ceiling


@pytest.mark.slow
def test_ceiling_runs_the_networks_kernels_pinned_in_its_own_process():
    cpu = min(os.sched_getaffinity(0))
    c = measure_scope([cpu], 1, cap_scale=0.25)       # short caps: the structure, not the figure
    assert "error" not in c, c
    assert c["affinity"] == [cpu] and c["cpus"] == [cpu] and c["threads"] == 1
    for p in ("fp32", "bf16"):
        assert c[f"{p}_gflops"] > 0
        assert c[f"{p}_gflops"] == max(c[f"{p}_all"].values())          # the fastest kernel is kept, named
        assert c[f"{p}_kernel"] in c[f"{p}_all"] and c[f"{p}_spread"] >= 0
        assert all(d["runs"] >= 1 and d["stable"] == (d["runs"] >= 3 and d["spread"] <= AGREE)
                   for d in c[f"{p}_detail"].values())
    assert any(k.startswith("conv3x3") for k in c["fp32_all"])           # the network's own kernels
    assert c["other_cpu_seconds"] >= 0 and 0 <= c["other_cpu_share"] and c["seconds"] > 0 and c["cap_scale"] == 0.25
    assert ceiling_text(c).startswith("fp32 ")


def test_a_failed_ceiling_says_why():
    c = measure_scope([0], 1, timeout_s=0.01)
    assert c["error"].startswith("ceiling probe failed: TimeoutExpired") and "not measured" in ceiling_text(c)


def test_a_kernel_is_repeated_until_its_best_three_runs_agree():
    calls = []

    def run() -> None:          # a kernel whose every call takes the same time: stable at once
        calls.append(1)
        time.sleep(0.005)
    got = stable_rate(run, 1e9, cap_s=60.0)
    assert got["stable"] and got["runs"] >= 3 and got["spread"] <= AGREE     # stopped once they agreed
    assert best_three_spread([100.0, 50.0, 99.0, 98.0]) == pytest.approx(0.02)
    assert best_three_spread([100.0, 90.0]) == pytest.approx(0.10)


def test_a_kernel_that_never_settles_stops_at_its_cap_and_says_so():
    t0 = time.perf_counter()

    def run() -> None:          # slower and slower (x2 every 0.2 s): never three runs within 3 %
        time.sleep(0.002 * (1 + 5 * (time.perf_counter() - t0)))
    got = stable_rate(run, 1e9, cap_s=0.3)
    assert not got["stable"] and got["runs"] >= 2


def test_scopes_on_the_same_cpus_share_one_measurement(monkeypatch):
    from hrvs_ray.node.topology import ScopePlacement
    from hrvs_ray.probes import ceiling

    measured = []
    monkeypatch.setattr(ceiling, "measure_scope", lambda cpus, threads, **kw: measured.append(cpus) or
                        {"fp32_gflops": 1.0, "cpus": cpus, "threads": threads})
    placements = {"node": ScopePlacement("node", (0, 1), 2, (), 0),
                  "socket": ScopePlacement("socket", (1, 0), 2, (), 0),
                  "cores:1": ScopePlacement("cores:1", (0,), 1, (), 0), "cores:4": "not enough cores"}
    got = ceiling.measure_placements(placements)
    assert sorted(measured) == [[0], [0, 1]] and set(got) == {"node", "socket", "cores:1"}
    assert got["node"] is got["socket"] and got["node"]["scopes"] == ["node", "socket"]


def test_a_busy_probe_is_cut_at_its_limit_and_says_so(monkeypatch):
    from hrvs_ray.node.topology import ScopePlacement
    from hrvs_ray.probes import ceiling

    monkeypatch.setattr(ceiling, "measure_scope", lambda *a, **kw: pytest.fail("no time was left to measure"))
    got = ceiling.measure_node({"node": ScopePlacement("node", (0,), 1, (), 0)}, lambda timeout_s: {"library_bytes": 3},
                               limit_s=5.0)
    assert got["library_bytes"] == 3 and "spent" in got["ceilings"]["node"]["error"]


def test_drift_before_and_after_a_nodes_cells_is_flagged_above_ten_percent():
    before = {"fp32_gflops": 200.0, "bf16_gflops": 20.0}
    assert drift(before, {"fp32_gflops": 190.0, "bf16_gflops": 21.0}) == {"fp32": 0.95, "bf16": 1.05,
                                                                           "flagged": False}
    assert drift(before, {"fp32_gflops": 170.0, "bf16_gflops": 20.0})["flagged"]
    assert drift(before, {"error": "x"}) == {"fp32": None, "bf16": None, "flagged": False}
    moved = {**before, "cpus": [0], "scopes": ["node"], "drift": drift(before, {"fp32_gflops": 150.0}),
             "other_cpu_share": 0.30}
    notes = ceiling_notes(pd.DataFrame({"node": ["n"], "ceilings": [json.dumps({"node": moved})]}))
    assert len(notes) == 2 and "took 30%" in notes[0] and "fp32 ×0.75" in notes[1]


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


def test_after_its_cells_each_nodes_ceilings_are_measured_again_and_stored_with_their_drift(tmp_path, monkeypatch):
    from hrvs_ray.cluster import driver, ray_io
    from hrvs_ray.cluster.nodes import NodeView
    from hrvs_ray.probes import ceiling
    from hrvs_ray.store import ResultStore, read_results

    first = {"fp32_gflops": 168.0, "bf16_gflops": 15.0, "cpus": [0, 1], "threads": 2, "scopes": ["node"]}
    node = NodeView("id1", "h", {}, 2, 0, info={"ceilings": {"node": first}}, name="vm", cluster="c")
    monkeypatch.setattr(ceiling, "measure_scope", lambda cpus, threads, **kw: {"fp32_gflops": 86.0, "bf16_gflops": 15.0,
                                                                              "cpus": cpus, "threads": threads})
    monkeypatch.setattr(ray_io, "recheck_ceilings", lambda by_id: {n: ceiling.recheck(c) for n, c in by_id.items()})
    store = ResultStore.open(tmp_path / "r", "s", "fp", {})
    driver.recheck_ceilings([node], store)
    store.write_cell({"cell_id": "a", "cluster": "c", "status": "skipped"}, None)   # a folder reads with a cell
    got = json.loads(read_results(tmp_path / "r").nodes.column("ceilings")[0].as_py())["node"]
    assert got["fp32_gflops"] == 168.0 and got["after"]["fp32_gflops"] == 86.0       # both stored
    assert got["drift"] == {"fp32": 0.5119, "bf16": 1.0, "flagged": True}
    assert "fp32 ×0.5119" in ceiling_notes(read_results(tmp_path / "r").nodes.to_pandas())[0]
    steps = pd.DataFrame({"cluster": ["c"], "node": ["vm"], "scope": ["node"], "precision": ["float32"]})
    assert step_ceilings(steps, read_results(tmp_path / "r").nodes.to_pandas()).iloc[0] == 168.0   # the higher
    slow_first = {**got, "fp32_gflops": 86.0, "after": {**got["after"], "fp32_gflops": 168.0}}
    nodes = pd.DataFrame({"cluster": ["c"], "node": ["vm"], "ceilings": [json.dumps({"node": slow_first})]})
    assert step_ceilings(steps, nodes).iloc[0] == 168.0
