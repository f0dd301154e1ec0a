"""The report's figures: log axes, counters that could not be read (a note, never empty axes),
and text that stays inside its axes and figure. Inputs are GENERATED
(tests/fixtures/report_results.py: seeded numbers, not measurements)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from hrvs_ray.report import build_report
from hrvs_ray.report.figures import colours
from hrvs_ray.report.load import load
from hrvs_ray.store import ResultStore
from tests.fixtures.report_results import make_results, node_row, step_rows, svg_text

# report rendering / torch training: seconds per test, so out of the fast lane (README)
pytestmark = pytest.mark.slow

NASTY = 'OOM <b>&"'

def test_log_scale_when_values_span_decades(tmp_path: Path) -> None:
    res = make_results(tmp_path / "r", clusters=["fast", "slow"], speeds={"fast": 1.0, "slow": 200.0}, runs=1,
                       steps=3)
    text = build_report([res], tmp_path / "r.html").read_text()
    assert "seconds / MP (all pixels) (log scale)" in text



def test_llc_event_refused_but_other_counters_read(tmp_path: Path) -> None:
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



# ---- counters: a note instead of empty axes; all text stays inside its axes / figure ----

def _no_pmu_scope(tmp_path: Path, status: str) -> Path:
    """Two clusters, one scope, no counter read anywhere, ``status`` recorded as the reason."""
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

    from hrvs_ray.metrics import timed
    from hrvs_ray.report import figures
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
