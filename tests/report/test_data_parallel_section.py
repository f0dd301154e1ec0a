"""The report's Data-parallel section and ``compare`` on data-parallel groups.

Inputs are GENERATED results folders written through the real writer
(tests/fixtures/report_results.py: 1-rank and ``2*cores:1`` cells on the same images, all
three splits); every expected number is computed here from the stored rows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrvs_ray.report import data_parallel_section as dps
from hrvs_ray.report import render
from hrvs_ray.report.charts import _scaling_data
from hrvs_ray.report.checks import DP_STACK, provenance
from hrvs_ray.report.compare import compare
from hrvs_ray.report.compare_output import to_json
from hrvs_ray.report.load import load
from hrvs_ray.report.remedies_section import grid as remedies_grid
from hrvs_ray.store import ResultStore
from tests.fixtures.report_results import downgrade_to_v1, make_results, stored_steps
from tests.helpers import section, table_rows

SPLITS = ("shard", "balanced", "uniform")
DP = dict(scopes=("cores:1",), input_sets=("HR&VS",), runs=2, steps=3, data_parallel=("2*cores:1",),
          splits=SPLITS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_results(tmp_path_factory.mktemp("dp") / "r", **DP)


@pytest.fixture(scope="module")
def dp_grid(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    m = load([folder])
    return dps.grid(m), m


@pytest.fixture(scope="module")
def html(folder: Path) -> str:
    return render([folder])


def _timed(folder: Path) -> pd.DataFrame:
    s = stored_steps(folder)
    return s[~s["warmup"]]


def test_the_grid_holds_the_1_rank_cell_and_every_split_with_figures_from_the_stored_rows(folder, dp_grid):
    g, _ = dp_grid
    assert [(r.ranks, r.split if r.ranks > 1 else "-") for r in g.itertuples()] == \
        [(1, "-"), (2, "shard"), (2, "balanced"), (2, "uniform")]
    s = _timed(folder)
    one = s[s["scope"] == "cores:1"]
    for r in g[g["ranks"] == 2].itertuples():
        mine = s[(s["scope"] == "2*cores:1") & (s["split"] == r.split)]
        compute = [np.asarray(c) for c in mine["rank_compute_seconds"]]
        px = [np.asarray(p) for p in mine["rank_px"]]
        assert r.straggler == pytest.approx(sum((c.max() - c).sum() for c in compute)
                                            / (2 * mine["seconds"].sum()))
        assert r.imbalance == pytest.approx(sum(p.max() for p in px) / sum(p.mean() for p in px))
        assert r.efficiency.value == pytest.approx(one["seconds"].sum() / (2 * mine["seconds"].sum()))
        assert r.s_imp == pytest.approx(mine["seconds"].sum() / (mine["informative_px"].sum() / 1e6))
        assert r.s_imp_low <= r.s_imp <= r.s_imp_high
    shard = g[(g["ranks"] == 2) & (g["split"] == "shard")].iloc[0]
    for r in g[(g["ranks"] == 2) & (g["split"] != "shard")].itertuples():
        assert r.vs_shard.value == pytest.approx(r.s_imp / shard["s_imp"])
        assert r.vs_shard.low <= r.vs_shard.value <= r.vs_shard.high
        # the splits of one rank count against its shard: one family, simultaneous intervals
        k = int(((g["ranks"] == r.ranks) & (g["split"] != "shard") & (g["input_set"] == r.input_set)
                 & (g["setup"] == r.setup)).sum())
        assert k == 2 and r.vs_shard.level == pytest.approx(1 - 0.05 / k)


def test_the_answers_say_which_split_recovers_how_much(dp_grid):
    g, m = dp_grid
    t = dps.answers(g, dps.choices(m, g))
    assert len(t.rows) == 1
    row = [c if isinstance(c, str) else c.text for c in t.rows[0]]
    assert row[:4] == ["gen-a", "2 × 1 core", "HR&VS", g["setup"].iloc[0]]
    for r in g[(g["ranks"] == 2) & (g["split"] != "shard")].itertuples():
        words = f"{r.split}: not measurable" if r.vs_shard.includes_one else f"{r.split}: {r.vs_shard.text()}"
        assert words in row[6]
    assert all(f"{s} {100 * v:.3g}"[:len(s) + 3] in row[5] for s, v in zip(g["split"][1:], g["straggler"][1:],
                                                                           strict=True))


@pytest.mark.slow
def test_the_report_shows_the_section_and_keeps_data_parallel_scopes_off_the_cores_axis(html, dp_grid):
    _, m = dp_grid
    assert "Data-parallel" in html and "Answers: which split recovers how much" in html
    assert "Data-parallel — gen-a, each rank 1 core" in html
    assert set(_scaling_data(m)["scope"]) == {"cores:1"}
    # a 1-rank cell runs once, as shard: its Remedies place lists no other split
    rg = remedies_grid(m)
    assert set(rg[rg["scope"] == "cores:1"]["split"]) == {"shard"}


@pytest.mark.slow
def test_the_reports_provenance_shows_the_data_parallel_stack(html):
    """The rendered Provenance table names Ray Train's version and the DDP backend with its
    version (the fixture's cells: gloo, whose version is torch's, on Ray Train 2.60.0)."""
    head = section(html, "Provenance").split("<thead>", 2)[2].split("</thead>", 1)[0]
    assert "<th>ray</th><th>Ray Train</th><th>DDP backend</th><th>hrvs-ray</th>" in head
    row, = table_rows(html, "Provenance per cluster")
    assert row[0] == "gen-a" and row[6:8] == ["2.60.0", "gloo 2.14.1"]
    assert "what the data-parallel cells (scopes N*SCOPE) ran on" in section(html, "Provenance")


def test_provenance_takes_the_stack_from_the_data_parallel_cells_own_columns(folder, tmp_path):
    m = load([folder])
    dp = m.cells["ranks"] > 1
    m.cells.loc[dp, ["dp_backend", "dp_backend_version", "ray_train_version"]] = ["nccl", "2.21.5", "2.61.0"]
    m.cells.loc[m.cells.index[dp][0], "dp_backend_version"] = None      # a backend without its version
    _, prov = provenance(m)
    i = prov.columns.index("ray")
    assert prov.columns[i + 1:i + 3] == DP_STACK
    assert prov.rows[0][i - 1:i + 3] == ["2.14.1", "2.60.0", "2.61.0", "nccl, nccl 2.21.5"]
    # a cluster without data-parallel cells, beside one with them: none
    other = make_results(tmp_path / "b", clusters=("gen-b",), scopes=("cores:1",), input_sets=("HR&VS",), runs=1,
                         steps=2)
    both = provenance(load([folder, other]))[1]
    assert {r[0]: r[i + 1:i + 3] for r in both.rows}["gen-b"] == ["none", "none"]


def test_a_report_without_data_parallel_cells_has_no_section(tmp_path):
    m = load([make_results(tmp_path / "r", scopes=("cores:1",), input_sets=("HR&VS",), runs=1, steps=2)])
    assert not dps.has_data_parallel(m)
    # nor the data-parallel stack in its provenance: its report is unchanged
    _, prov = provenance(m)
    assert not set(DP_STACK) & set(prov.columns) and not prov.note


def test_compare_matches_data_parallel_groups_by_ranks_and_split(folder, tmp_path):
    new = make_results(tmp_path / "new", noise_seed=7, **DP)
    doc = json.loads(json.dumps(to_json(compare(folder, new))))
    keys = {(g["scope"], g["ranks"], g["split"]) for g in doc["groups"]}
    assert keys == {("cores:1", 1, "shard")} | {("2*cores:1", 2, s) for s in SPLITS}
    a, b = _timed(folder), _timed(new)
    for g in (g for g in doc["groups"] if g["ranks"] == 2):
        for side, s in (("base", a), ("new", b)):
            mine = s[(s["scope"] == "2*cores:1") & (s["split"] == g["split"])]
            idle = sum((np.asarray(c).max() - np.asarray(c)).sum() for c in mine["rank_compute_seconds"])
            assert g["data_parallel"]["straggler_share"][side] == pytest.approx(idle / (2 * mine["seconds"].sum()))
    assert "data_parallel" not in next(g for g in doc["groups"] if g["ranks"] == 1)


def test_an_old_folder_matches_a_new_one_as_1_rank_shard(tmp_path):
    base = downgrade_to_v1(make_results(tmp_path / "old", scopes=("cores:1",), input_sets=("HR&VS",), runs=2,
                                        steps=3))
    new = make_results(tmp_path / "new", noise_seed=7, **DP)
    doc = to_json(compare(base, new))
    assert [(g["scope"], g["ranks"], g["split"]) for g in doc["groups"]] == [("cores:1", 1, "shard")]
    assert {(k["scope"], k["ranks"], k["split"]) for k in doc["only_new"]} == {("2*cores:1", 2, s) for s in SPLITS}



def test_data_parallel_cells_without_timed_steps_say_so(tmp_path):
    root = make_results(tmp_path / "r", scopes=("cores:1",), input_sets=("HR&VS",), runs=1, steps=2)
    # a data-parallel cell that failed before its first step: a row naming its scope, no steps
    ResultStore.open(root, "generated", "fp-generated", {}).write_cell(
        {"sweep": "generated", "cell_id": "dp", "cluster": "gen-a", "scope": "2*cores:1", "input_set": "HR&VS",
         "run": 0, "status": "failed", "error": "rank 1 on gen-a-n0 killed by SIGKILL"}, None)
    m = load([root])
    g = dps.grid(m)
    assert dps.has_data_parallel(m) and g.empty
    t = dps.answers(g, dps.choices(m, g))
    assert not t.rows and t.empty.startswith("No data-parallel cell has timed steps")
