"""The HTML report from generated results folders written with the real schemas
(tests/fixtures/report_results.py: seeded numbers, not measurements)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hrvs_ray.report import build_report
from hrvs_ray.report.figures import PALETTE, colours
from hrvs_ray.report.load import load, scope_label
from hrvs_ray.report.tables import table1
from hrvs_ray.store import ResultsError, ResultStore
from tests.fixtures.report_results import NO_PMU, make_results, node_row, step_rows, stored_steps, svg_text
from tests.helpers import REPO

# report rendering / torch training: seconds per test, so out of the fast lane (README)
pytestmark = pytest.mark.slow

HOSTILE = "<script>alert(1)</script>"
HOSTILE_ESC = "&lt;script&gt;alert(1)&lt;/script&gt;"
NASTY = 'OOM <b>&"'


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("rep")
    res = make_results(tmp / "res", clusters=["gen-a", HOSTILE], scopes=["cores:4", "node"], runs=2, steps=4,
                       no_counters=["gen-a"], node_over={"hostname": NASTY},
                       failed={("gen-a", "node", "HR&VS", 1): NASTY},
                       skipped={("gen-a", "cores:4", "LR&FS", 0): "planned memory above headroom"})
    out = build_report([res], tmp / "out" / "r.html")
    assert out == tmp / "out" / "r.html"
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]  # no temp file left behind
    plain = tmp / "out" / "plain"  # the report is exactly as readable as a file the user writes
    plain.write_text("x")
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    plain.unlink()
    return out.read_text(encoding="utf-8")


def test_sections_and_scope_headings(report: str) -> None:
    for h in ("Summary", "Answers per cluster and scope", "Figures per scope", "Table 1. Megapixels per batch",
              "Table 2. Main memory per batch", "Table 3. Node hardware", "Determinism check",
              "Failed and skipped cells", "Provenance per cluster"):
        assert f">{h}</h" in report, h
    assert '<h3 id="scope-cores-4">4 cores</h3>' in report
    assert '<h3 id="scope-node">node</h3>' in report
    # two figures per scope, and one scaling figure across the two scopes
    assert report.count("<svg") == 2 * 2 + 1


def test_self_contained_and_no_scripts(report: str) -> None:
    assert "<script" not in report.lower()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', report)
    assert "@import" not in report
    assert not re.search(r"url\(\s*['\"]?[^#'\"\s]", report)  # only in-document refs (SVG clip paths)
    assert "<link" not in report
    ids = re.findall(r'\bid="([^"]+)"', report)
    assert len(ids) == len(set(ids))  # several inline SVGs must not share element ids
    assert set(re.findall(r'(?:url\(#|href="#)([^")]+)', report)) <= set(ids)  # no dangling references


def test_data_strings_are_escaped(report: str) -> None:
    assert HOSTILE_ESC in report
    assert "<b>" not in report and "&lt;b&gt;&amp;&quot;" in report  # node hostname and failure reason


def test_svg_text_is_escaped_and_well_formed(report: str) -> None:
    for svg in re.findall(r"<svg.*?</svg>", report, flags=re.S):
        root = ET.fromstring(svg)  # well-formed XML: no injected markup
        assert not [e for e in root.iter() if e.tag.endswith("script")]
        labels = {(e.text or "") for e in root.iter() if e.tag.endswith("text")}
        assert HOSTILE in labels  # the name is text content of a <text>, not an element


def test_counters_unavailable_explained(report: str) -> None:
    # gen-a had no PMU: its slot says why; the other cluster's counters are plotted.
    assert "no counters: " + NO_PMU in svg_text(report)


def test_failed_and_skipped_listed(report: str) -> None:
    assert "planned memory above headroom" in report
    assert '<td class="flag">failed</td>' in report and '<td class="flag">skipped</td>' in report
    assert "cell(s) failed or were skipped" in report


def test_determinism_ok(report: str) -> None:
    assert "identical batches everywhere compared" in report


def test_table1_values_and_warmup_excluded(tmp_path: Path) -> None:
    res = make_results(tmp_path / "r", clusters=["a", "b"], runs=2, steps=5)
    rows = {r[0]: r for r in table1(load([res])).rows}
    # expected from the stored rows: timed steps only, a batch run on both clusters counted once
    s = stored_steps(res)
    s = s[~s["warmup"]].drop_duplicates(["input_set", "run", "step", "batch_fingerprint"])
    for name, g in s.groupby("input_set"):
        assert rows[name][2] == str(len(g))
        for i, col in enumerate(("informative_px", "padding_px", "total_px")):
            mp = g[col] / 1e6
            for j, want in enumerate((mp.min(), mp.mean(), mp.max())):
                assert float(rows[name][3 + 3 * i + j]) == pytest.approx(want, rel=5e-3, abs=1e-9), (name, col)
        # the one statistic: Σ padding ÷ Σ total, not the mean of per-step shares
        assert float(rows[name][12]) == pytest.approx(100 * g["padding_px"].sum() / g["total_px"].sum(), rel=5e-3,
                                                      abs=1e-9)


def test_minimal_single_cluster_scope_run_without_counters(tmp_path: Path) -> None:
    res = make_results(tmp_path / "r", clusters=["solo"], scopes=["socket"], input_sets=["HR&VS"], runs=1,
                       steps=3, no_counters=["solo"])
    text = build_report([res], tmp_path / "r.html").read_text()
    assert "n/a (1 run)" in text
    assert f"Hardware counters (paper Figs. 8–10): unavailable on every node of this scope — {NO_PMU}" in text
    assert text.count("<svg") == 1  # the timing figure only
    assert not re.search(r">\s*nan\s*<", text, flags=re.I)
    assert '<h3 id="scope-socket">socket</h3>' in text


def test_only_failed_cells(tmp_path: Path) -> None:
    fail = {("x", "cores:4", s, 0): f"{s} crashed" for s in ("LR&FS", "MR&VS", "HR&VS")}
    res = make_results(tmp_path / "r", clusters=["x"], runs=1, failed=fail)
    text = build_report([res], tmp_path / "r.html").read_text()
    assert "HR&amp;VS crashed" in text and "0 of 3 recorded cells finished ok" in text
    assert "no timed steps" in text


def test_merge_two_folders_and_fingerprint_mismatch(tmp_path: Path) -> None:
    a = make_results(tmp_path / "a", sweep="s1", clusters=["same", "one"], runs=1, steps=3)
    b = make_results(tmp_path / "b", sweep="s2", clusters=["same", "two"], runs=1, steps=3, fingerprint_salt="x")
    m = load([a, b, a])  # a folder named twice is read once
    assert len(m.sources) == 2
    assert m.clusters == ["one", "same [s1]", "same [s2]", "two"]
    # different sweeps may reuse input-set names for other data: not compared
    assert "identical batches everywhere compared" in build_report([a, b], tmp_path / "r.html").read_text()
    # the same sweep on another cluster with other batches: flagged
    c = make_results(tmp_path / "c", sweep="s1", clusters=["three"], runs=1, steps=3, fingerprint_salt="x")
    text = build_report([a, c], tmp_path / "r2.html").read_text()
    assert "MISMATCHED batches" in text
    assert "configuration(s) saw different batches" in text


def test_merge_identical_batches(tmp_path: Path) -> None:
    a = make_results(tmp_path / "a", sweep="s", clusters=["one"], runs=1, steps=3)
    b = make_results(tmp_path / "b", sweep="s", clusters=["two"], runs=1, steps=3)
    text = build_report([a, b], tmp_path / "r.html").read_text()
    assert "identical batches everywhere compared" in text
    key = ["input_set", "run", "step"]  # every batch of one folder that the other also ran, warm-up included
    both = stored_steps(a)[key].drop_duplicates().merge(stored_steps(b)[key].drop_duplicates())
    assert re.search(r"; (\d+) ran in more than one place", text).group(1) == str(len(both))


def test_colours_fixed_per_input_set() -> None:
    full = colours(["LR&FS", "MR&VS", "HR&VS", "zeta"])
    assert colours(["HR&VS"])["HR&VS"] == full["HR&VS"] == PALETTE[2]
    assert len(set(full.values())) == 4


def test_scope_label() -> None:
    assert scope_label("cores:4") == "4 cores" and scope_label("cores:1") == "1 core"
    assert scope_label("socket") == "socket"


# ---- broken inputs reach the user as ResultsError naming the folder or file ----

def test_error_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=re.escape(str(tmp_path / "nope"))):
        build_report([tmp_path / "nope"], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_error_no_folder_given(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no results folder given"):
        build_report([], tmp_path / "r.html")


def test_error_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="empty.*no sweep.json"):
        build_report([tmp_path / "empty"], tmp_path / "r.html")
    res = make_results(tmp_path / "r", runs=1, steps=2)
    (res / "cells.parquet").unlink()
    with pytest.raises(ResultsError, match="empty results folder"):
        build_report([res], tmp_path / "r.html")


def test_error_corrupt_parquet(tmp_path: Path) -> None:
    res = make_results(tmp_path / "r", runs=1, steps=2)
    (res / "cells.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ResultsError, match=r"cells\.parquet: corrupt"):
        build_report([res], tmp_path / "out.html")


def test_error_newer_schema(tmp_path: Path) -> None:
    res = make_results(tmp_path / "r", runs=1, steps=2)
    t = pq.read_table(res / "cells.parquet")
    pq.write_table(t.replace_schema_metadata({**t.schema.metadata, b"schema_version": b"99"}),
                   res / "cells.parquet")
    with pytest.raises(ResultsError, match="schema_version 99 is newer"):
        build_report([res], tmp_path / "out.html")
    ident = json.loads((res / "sweep.json").read_text())
    (res / "sweep.json").write_text(json.dumps({**ident, "schema_version": 99}))
    with pytest.raises(ResultsError, match="sweep.json: schema_version 99 is newer"):
        build_report([res], tmp_path / "out.html")


def test_no_torch_ray_or_pyplot_on_the_report_path(tmp_path: Path) -> None:
    res = make_results(tmp_path / "r", runs=1, steps=2)
    code = ("import sys; from pathlib import Path; from hrvs_ray.report import build_report; "
            f"build_report([Path({str(res)!r})], Path({str(tmp_path / 'r.html')!r})); "
            "bad = [m for m in ('torch', 'ray', 'matplotlib.pyplot') if m in sys.modules]; "
            "print('BAD', bad) if bad else print('CLEAN')")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "TkAgg",
           "DISPLAY": ""}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "CLEAN"


def test_without_node_descriptions(tmp_path: Path) -> None:
    res = make_results(tmp_path / "r", runs=1, steps=2)
    (res / "nodes.parquet").unlink()
    text = build_report([res], tmp_path / "r.html").read_text()
    assert "no node descriptions recorded" in text
    assert "Summary per cluster, scope and input set" in text


def test_run_to_run_variability_above_6_percent_flagged(tmp_path: Path) -> None:
    store = ResultStore.open(tmp_path / "r", "s", "fp", {})
    store.write_node(node_row("c", "c-n0"))
    for run, speed in enumerate((1.0, 1.0, 1.5)):  # run 2 is 50% slower: run-to-run CV ~ 24%
        for name in ("LR&FS", "MR&VS"):
            cid = f"c{run}{name[:2]}"
            t = step_rows("s", cid, "c", "c-n0", "cores:4", name, run, 4, speed=1.0 if name == "LR&FS" else speed)
            store.write_cell({"sweep": "s", "cell_id": cid, "cluster": "c", "node": "c-n0", "scope": "cores:4",
                              "input_set": name, "run": run, "status": "ok"}, t)
    text = build_report([tmp_path / "r"], tmp_path / "r.html").read_text()
    flagged = re.findall(r'<td class="flag">([\d.]+)% &gt; 6%</td>', text)
    s = stored_steps(tmp_path / "r")
    s = s[~s["warmup"] & (s["input_set"] == "MR&VS")]
    per_run = s.groupby("run")["seconds"].sum() / (s.groupby("run")["total_px"].sum() / 1e6)
    assert len(flagged) == 1 and float(flagged[0]) == pytest.approx(100 * per_run.std() / per_run.mean(), abs=0.05)


def test_partial_counters_keep_the_per_panel_note(report: str) -> None:
    # gen-a lacks counters but the other cluster has them: the counter figures are drawn
    # and gen-a's slot carries the reason; no whole-scope note.
    assert "unavailable on every node" not in report and report.count("<svg") == 2 * 2 + 1
    shown = svg_text(report)
    assert shown.count("no counters: " + NO_PMU) == 2 * 4  # 2 scopes x 4 counter panels
    assert "Instructions per informative megapixel" in shown
