"""``report.checks``: the determinism check, the failed/skipped list and the provenance
tables, on small generated results folders (tests/fixtures/report_results.py) whose merged
frames are edited to show exactly one fault."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hrvs_ray import __version__
from hrvs_ray.remedy_axes import PAPER, Remedy
from hrvs_ray.report.checks import determinism, failures, provenance
from hrvs_ray.report.fmt import Cell
from hrvs_ray.report.load import load
from hrvs_ray.store import SCHEMA_VERSION
from tests.fixtures.report_results import make_results


@pytest.fixture()
def two(tmp_path: Path):
    """Clusters a and b ran the same 2 runs x 3 steps of HR&VS: 6 batch configurations."""
    return load([make_results(tmp_path / "r", clusters=["a", "b"], input_sets=["HR&VS"], runs=2, steps=3)])


def _where(m, cluster: str, run: int, step: int):
    s = m.steps
    return (s["cluster"] == cluster) & (s["run"] == run) & (s["step"] == step)


def test_identical_batches_everywhere_pass(two):
    t = determinism(two)
    assert t.extra == {"ok": True, "compared": 6} and t.rows == []
    assert t.note.startswith("6 batch configurations") and "6 ran in more than one place" in t.note
    assert "identical batch fingerprints" in t.note


def test_one_different_batch_is_flagged_with_both_places(two):
    two.steps.loc[_where(two, "b", 1, 2), "batch_fingerprint"] = "deadbeefdeadbeef"
    t = determinism(two)
    assert t.extra == {"ok": False, "compared": 6}
    assert [r[:6] for r in t.rows] == [["HR&VS", "4", "0", "1", "2", "pad"]] * 2
    flagged = {r[6].text: r[7] for r in t.rows}
    assert all(isinstance(r[6], Cell) and r[6].cls == "flag" for r in t.rows)
    assert flagged["deadbeefdeadbeef"] == "b / b-n0 / 4 cores" and "a / a-n0 / 4 cores" in flagged.values()
    assert "1 configuration(s) saw different batches" in t.note


def test_a_different_seed_run_or_sweep_is_another_configuration_not_a_mismatch(two):
    for col, value in (("seed", 99.0), ("sweep", "other")):
        m = two
        rows = _where(m, "b", 0, 1)
        saved = m.steps.loc[rows, [col, "batch_fingerprint"]].copy()
        m.steps.loc[rows, [col, "batch_fingerprint"]] = [value, "0" * 16]
        t = determinism(m)
        assert t.extra == {"ok": True, "compared": 5}, col      # that step now ran in one place only
        assert t.note.startswith("7 batch configurations"), col
        m.steps.loc[rows, [col, "batch_fingerprint"]] = saved.values


def test_bucket_batches_are_compared_with_bucket_only(tmp_path):
    """bucket regroups images on purpose: its fingerprints differ from pad's in the same place."""
    m = load([make_results(tmp_path / "r", clusters=["a", "b"], input_sets=["HR&VS"], runs=1, steps=3,
                           remedies=(PAPER, Remedy("bucket"), Remedy(precision="bfloat16")))])
    t = determinism(m)
    assert t.extra == {"ok": True, "compared": 6}        # pad and bucket, 3 steps each; bf16 pools with pad
    m.steps.loc[(m.steps["cluster"] == "a") & (m.steps["batching"] == "bucket") & (m.steps["step"] == 0),
                "batch_fingerprint"] = "f" * 16
    t = determinism(m)
    assert not t.extra["ok"] and {r[5] for r in t.rows} == {"bucket"}


def test_steps_without_a_fingerprint_are_not_compared(two):
    two.steps.loc[two.steps["cluster"] == "b", "batch_fingerprint"] = None
    assert determinism(two).extra == {"ok": True, "compared": 0}


def test_failed_and_skipped_cells_are_listed_with_their_reasons(tmp_path):
    m = load([make_results(tmp_path / "r", clusters=["a"], scopes=["cores:4", "node"], input_sets=["HR&VS"],
                           runs=2, steps=2, failed={("a", "node", "HR&VS", 1): "out of memory"},
                           skipped={("a", "cores:4", "HR&VS", 0): "no node of cluster a"})])
    t = failures(m)
    assert t.note == "2 of 4 recorded cells finished ok."
    got = [[c.text if isinstance(c, Cell) else c for c in r] for r in t.rows]
    assert got == [["failed", "a", "node", "HR&VS", "pad+fp32+nchw", "1", "2", "a-n0.example", "out of memory"],
                   ["skipped", "a", "4 cores", "HR&VS", "pad+fp32+nchw", "0", "1", "a-n0.example",
                    "no node of cluster a"]]
    assert all(r[0].cls == "flag" for r in t.rows)


def test_no_failures_is_an_empty_table(two):
    t = failures(two)
    assert t.rows == [] and t.note == f"{len(two.cells)} of {len(two.cells)} recorded cells finished ok."


def test_provenance_names_folders_software_and_jobs(tmp_path):
    r = make_results(tmp_path / "r", sweep="s1", clusters=["a", "b"], input_sets=["HR&VS"], runs=2, steps=2,
                     no_counters=["b"])
    m = load([r])
    a = m.cells.index[m.cells["cluster"] == "a"]
    m.cells.loc[a[0], "started_at"] -= pd.Timedelta(hours=1)      # the first start and the last finish
    m.cells.loc[a[0], "finished_at"] += pd.Timedelta(hours=2)     # are those of different cells
    src, prov = provenance(m)
    assert src.rows == [[str(r), "s1", "fp-s1", str(SCHEMA_VERSION), __version__, "4", "8"]]
    rows = {row[0]: row for row in prov.rows}
    assert rows["a"][1:4] == ["s1", "a-n0.example", "generic"]
    assert rows["b"][3] == "none"                           # no PMU: no LLC event recorded
    assert rows["a"][4:9] == ["2.14.1", "2.60.0", "0.1.0", "3.11.2", "0123456789ab"]
    assert rows["a"][9] == "hrvs-ray.sif @ sha256:feedbeef"
    assert (rows["a"][10], rows["b"][10]) == ("1000", "1001")
    assert rows["a"][11:] == ["2024-05-01 07:00 UTC", "2024-05-01 10:05 UTC"]
    assert rows["b"][11:] == ["2024-05-01 08:00 UTC", "2024-05-01 08:05 UTC"]


def test_provenance_outside_a_container_says_so(tmp_path):
    m = load([make_results(tmp_path / "r", clusters=["a"], input_sets=["HR&VS"], runs=1, steps=2)])
    m.cells["container_image"] = None
    m.cells["container_digest"] = None
    m.cells["in_container"] = False
    assert provenance(m)[1].rows[0][9] == "not in a container"
    m.cells["in_container"] = None
    assert provenance(m)[1].rows[0][9] == "none"
