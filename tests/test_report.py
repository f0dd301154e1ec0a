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

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from report_results import NO_PMU, make_results  # noqa: E402

from hrvs_ray.report import build_report  # noqa: E402
from hrvs_ray.report.figures import PALETTE, colours  # noqa: E402
from hrvs_ray.report.load import load, scope_label  # noqa: E402
from hrvs_ray.report.tables import table1  # noqa: E402
from hrvs_ray.store import ResultStore, ResultsError  # noqa: E402

HOSTILE = "<script>alert(1)</script>"
HOSTILE_ESC = "&lt;script&gt;alert(1)&lt;/script&gt;"
NASTY = 'OOM <b>&"'


def svg_text(html: str) -> str:
    """All text the figures show, lines joined by spaces (wrapped labels become one string)."""
    words = []
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        words += [" ".join(e.itertext()) for e in ET.fromstring(svg).iter() if e.tag.endswith("}text")]
    return " ".join(" ".join(words).split())


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
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    return out.read_text(encoding="utf-8")


def test_sections_and_scope_headings(report: str) -> None:
    for h in ("Summary", "Answers per cluster and scope", "Figures per scope", "Table 1. Megapixels per batch",
              "Table 2. Main memory per batch", "Table 3. Node hardware", "Determinism check",
              "Failed and skipped cells", "Provenance per cluster"):
        assert f">{h}</h" in report, h
    assert '<h3 id="scope-cores-4">4 cores</h3>' in report
    assert '<h3 id="scope-node">node</h3>' in report
    assert report.count("<svg") == 4  # two figures per scope


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
    t = table1(load([res]))
    rows = {r[0]: r for r in t.rows}
    # 2 runs x 4 timed steps, counted once although both clusters ran them.
    assert rows["LR&FS"][2] == "8" and rows["LR&FS"][3:6] == ["67.1", "67.1", "67.1"]
    assert rows["LR&FS"][6:9] == ["0.0", "0.0", "0.0"]
    assert float(rows["HR&VS"][4]) > 16.8 and float(rows["MR&VS"][7]) > 14.5


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
    assert re.search(r"; (\d+) ran in more than one place", text).group(1) == "9"


def test_log_scale_when_values_span_decades(tmp_path: Path) -> None:
    res = make_results(tmp_path / "r", clusters=["fast", "slow"], speeds={"fast": 1.0, "slow": 200.0}, runs=1,
                       steps=3)
    text = build_report([res], tmp_path / "r.html").read_text()
    assert "seconds / MP (all pixels) (log scale)" in text


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
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "MPLBACKEND": "TkAgg",
           "DISPLAY": ""}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "CLEAN"


def test_llc_event_refused_but_other_counters_read(tmp_path: Path) -> None:
    from report_results import node_row, step_rows
    import pyarrow as pa
    from hrvs_ray.store import ResultStore
    store = ResultStore.open(tmp_path / "r", "s", "fp", {})
    store.write_node(node_row("amd", "amd-n0"))
    t = step_rows("s", "c0", "amd", "amd-n0", "node", "HR&VS", 0, 4)
    i = t.schema.get_field_index("llc_misses")
    t = t.set_column(i, "llc_misses", pa.nulls(t.num_rows, pa.int64()))
    store.write_cell({"sweep": "s", "cell_id": "c0", "cluster": "amd", "node": "amd-n0", "scope": "node",
                      "input_set": "HR&VS", "run": 0, "status": "ok"}, t)
    text = svg_text(build_report([tmp_path / "r"], tmp_path / "r.html").read_text())
    assert "hardware counters unavailable: ok (llc_misses not recorded)" in text
    assert "IPC (instructions / cycle)" in text and text.count("hardware counters unavailable") == 1


def test_without_node_descriptions(tmp_path: Path) -> None:
    res = make_results(tmp_path / "r", runs=1, steps=2)
    (res / "nodes.parquet").unlink()
    text = build_report([res], tmp_path / "r.html").read_text()
    assert "no node descriptions recorded" in text
    assert "Summary per cluster, scope and input set" in text


def test_run_to_run_variability_above_6_percent_flagged(tmp_path: Path) -> None:
    from report_results import node_row, step_rows
    from hrvs_ray.store import ResultStore
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
    assert len(flagged) == 1 and 15 < float(flagged[0]) < 35


# ---- counters: a note instead of empty axes; all text stays inside its axes / figure ----

def _no_pmu_scope(tmp_path: Path, status: str) -> Path:
    """Two clusters, one scope, no counter read anywhere, ``status`` recorded as the reason."""
    from report_results import node_row, step_rows
    store = ResultStore.open(tmp_path / "r", "s", "fp", {})
    for cluster in ("c1", "c2"):
        store.write_node(node_row(cluster, f"{cluster}-n0"))
        t = step_rows("s", f"{cluster}0", cluster, f"{cluster}-n0", "node", "HR&VS", 0, 3, counters=False)
        t = t.set_column(t.schema.get_field_index("counter_status"), "counter_status",
                         pa.array([status] * t.num_rows, pa.string()))
        store.write_cell({"sweep": "s", "cell_id": f"{cluster}0", "cluster": cluster, "node": f"{cluster}-n0",
                          "scope": "node", "input_set": "HR&VS", "run": 0, "status": "ok"}, t)
    return tmp_path / "r"


def test_no_counter_scope_gives_html_note_not_empty_figure(tmp_path: Path) -> None:
    text = build_report([_no_pmu_scope(tmp_path, NASTY + " no PMU")], tmp_path / "r.html").read_text()
    note = ("Hardware counters (paper Figs. 8–10): unavailable on every node of this scope — "
            "OOM &lt;b&gt;&amp;&quot; no PMU")
    assert f'<p class="note fig-note">{note}</p>' in text  # escaped: the status comes from the data
    assert text.count("<svg") == 1  # the timing figure; no SVG of four empty counter axes
    shown = svg_text(text)
    assert "Seconds per megapixel" in shown
    assert "Instructions per" not in shown and "hardware counters unavailable" not in shown


def test_partial_counters_keep_the_per_panel_note(report: str) -> None:
    # gen-a lacks counters but the other cluster has them: the counter figures are drawn
    # and gen-a's slot carries the reason; no whole-scope note.
    assert "unavailable on every node" not in report and report.count("<svg") == 4
    shown = svg_text(report)
    assert shown.count("no counters: " + NO_PMU) == 2 * 4  # 2 scopes x 4 counter panels
    assert "Instructions per informative megapixel" in shown


def _extents_fit(fig) -> list[str]:
    """Titles inside the figure, and notes (with their boxes) inside their own axes, measured
    on the real Agg renderer with the report's font settings."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig).draw()
    r = fig.canvas.get_renderer()
    fw = fig.bbox.width
    bad = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        title = ax.title.get_window_extent(r)
        if title.x0 < 0 or title.x1 > fw:
            bad.append(f"title {ax.title.get_text()!r} spans {title.x0:.0f}..{title.x1:.0f} of {fw:.0f}")
        box = ax.bbox
        for t in ax.texts:
            e = t.get_bbox_patch().get_window_extent(r) if t.get_bbox_patch() else t.get_window_extent(r)
            if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1:
                bad.append(f"note {t.get_text()!r} spans {e.x0:.0f}..{e.x1:.0f}, axes {box.x0:.0f}..{box.x1:.0f}")
    return bad


@pytest.mark.parametrize("clusters", [["amd"], ["amd", "intel", "arm-with-a-longer-name"]])
def test_titles_and_notes_fit(tmp_path: Path, clusters: list[str]) -> None:
    import matplotlib
    from report_results import node_row, step_rows
    from hrvs_ray.report import figures
    from hrvs_ray.report.tables import timed
    # Counters read except the LLC event (a whole panel without data) for every cluster but
    # the last, which read none (a per-cluster note): both kinds of note, narrowest figure too.
    store = ResultStore.open(tmp_path / "r", "s", "fp", {})
    for ci, cluster in enumerate(clusters):
        store.write_node(node_row(cluster, f"{cluster}-n0"))
        for name in ("LR&FS", "HR&VS"):
            cid = f"{cluster}{name[:2]}"
            none = ci == len(clusters) - 1 and len(clusters) > 1
            t = step_rows("s", cid, cluster, f"{cluster}-n0", "node", name, 0, 3, counters=not none)
            t = t.set_column(t.schema.get_field_index("llc_misses"), "llc_misses", pa.nulls(t.num_rows, pa.int64()))
            t = t.set_column(t.schema.get_field_index("counter_status"), "counter_status", pa.array(
                ["unsupported: no PMU (ENOENT) — this machine/VM exposes no hardware counters" if none else
                 "partial: the LLC event was refused by the kernel (EOPNOTSUPP) on this CPU model"] * t.num_rows))
            store.write_cell({"sweep": "s", "cell_id": cid, "cluster": cluster, "node": f"{cluster}-n0",
                              "scope": "node", "input_set": name, "run": 0, "status": "ok"}, t)
    m = load([tmp_path / "r"])
    d = timed(m.steps)
    cmap = colours(m.input_sets)
    with matplotlib.rc_context(figures.RC):
        for metrics in (figures.TIME_METRICS, figures.COUNTER_METRICS):
            fig = figures.draw(d, metrics, 2, sorted(clusters), m.input_sets, cmap)
            assert _extents_fit(fig) == []
            texts = [t.get_text() for ax in fig.axes for t in ax.texts]
            if metrics is figures.COUNTER_METRICS:
                assert any(t.startswith("hardware counters unavailable") for t in texts)
                assert any(t.startswith("no counters") for t in texts) == (len(clusters) > 1)
