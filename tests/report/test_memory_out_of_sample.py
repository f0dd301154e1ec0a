"""The report's out-of-sample memory check: each results folder predicted by a fit of the
others, only on nodes whose identity matches. Folders written through the real store with
chosen pass pixels and peaks (not measurements), so every number has a hand computation."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from hrvs_ray.plan.memory_calibration import plan_estimator, write_calibration
from hrvs_ray.plan.memory_identity import results_identities
from hrvs_ray.remedy_axes import PAPER
from hrvs_ray.report import build_report
from hrvs_ray.report.load import load
from hrvs_ray.report.memory_out_of_sample import SINGLE, TITLE, out_of_sample, predict_folder
from hrvs_ray.store import ResultStore, read_results
from tests.fixtures.report_results import _cell_row, make_results, node_row, step_rows

MP = 1_000_000
GB = 1e9
# A: one MR&VS cell, warm-up then 2, 3, 4, 5 MP at 1 GB + 300 B/px ± 16 MB. The residuals
# (+, −, −, +) are orthogonal to 1 and to the pixels, so least squares gives exactly that line.
A = {"MR&VS": [(1 * MP, 1.3 * GB), (2 * MP, 1.616 * GB), (3 * MP, 1.884 * GB), (4 * MP, 2.184 * GB),
               (5 * MP, 2.516 * GB)]}
# B: MR&VS 2 and 4 MP, then 3 MP whose peak is the heap kept from 4 MP (masked: neither fitted
# nor predicted); HR&VS 3 and 6 MP. Each cell's first step is its warm-up.
B = {"MR&VS": [(1 * MP, 1.3 * GB), (2 * MP, 1.6 * GB), (4 * MP, 2.0 * GB), (3 * MP, 2.0 * GB)],
     "HR&VS": [(1 * MP, 1.3 * GB), (3 * MP, 1.9 * GB), (6 * MP, 2.4 * GB)]}


def _folder(root: Path, cluster: str, cells: dict, sweep: str = "oos", **node_over) -> Path:
    """A results folder with one node and one cell per input set, the given (pass px, peak) per step."""
    store = ResultStore.open(root, sweep, f"fp-{sweep}", {"generated": True})
    node = f"{cluster}-n0"
    store.write_node(node_row(cluster, node, **node_over))
    for name, steps in cells.items():
        cid = f"{root.name}.{cluster}.{name}".replace("&", "")
        t = step_rows(sweep, cid, cluster, node, "cores:4", name, 0, len(steps))
        px = [int(p) for p, _ in steps]
        for col, vals, typ in (("informative_px", px, pa.int64()), ("padding_px", [0] * len(px), pa.int64()),
                               ("total_px", px, pa.int64()), ("pass_px", px, pa.int64()),
                               ("peak_rss_bytes", [int(k) for _, k in steps], pa.int64())):
            t = t.set_column(t.schema.get_field_index(col), col, pa.array(vals, typ))
        store.write_cell(_cell_row(sweep, cid, cluster, node, "cores:4", name, 0, "ok", None, 0, 0, PAPER, None), t)
    return root


def _ols(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares by hand: (base, bytes per pixel)."""
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def _median(v: list[float]) -> float:
    v = sorted(v)
    return (v[len(v) // 2] + v[(len(v) - 1) // 2]) / 2


def _errors(points, base, slope):
    return [abs(base + slope * x - y) / y for x, y in points]


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    return _folder(tmp_path / "a", "run-a", A), _folder(tmp_path / "b", "run-b", B)


def test_each_folder_is_predicted_by_the_other_folders_fit(two) -> None:
    a, b = two
    t = out_of_sample(load([a, b]))
    rows = {(r[0], r[2]): r for r in t.rows}
    assert list(rows) == [("a", "MR&VS"), ("b", "MR&VS"), ("b", "HR&VS"), ("b", "all")]
    # B from A's fit, 1 GB + 300 B/px: MR&VS 2 MP 1.6 GB (0 %), 4 MP 2.2 GB against 2.0 (10 %);
    # HR&VS 3 MP 1.9 GB (0 %), 6 MP 2.8 GB against 2.4 (16.7 %). A's in-sample worst: 16 MB / 1.616 GB.
    assert rows["b", "MR&VS"] == ["b", "a", "MR&VS", "2", "5.0%", "10.0%", "1.0%", "0"]
    assert rows["b", "HR&VS"] == ["b", "a", "HR&VS", "2", "8.3%", "16.7%", "1.0%", "0"]
    assert rows["b", "all"] == ["b", "a", "all", "4", "5.0%", "16.7%", "1.0%", "0"]
    # A from B's fit: least squares over B's four unmasked timed steps (the masked 3 MP is not one)
    fit_b = [(2, 1.6), (4, 2.0), (3, 1.9), (6, 2.4)]
    base, slope = _ols(fit_b)                                   # 1.2571 GB + 191.4 B/px
    oos = _errors([(2, 1.616), (3, 1.884), (4, 2.184), (5, 2.516)], base, slope)
    insample = max(_errors(fit_b, base, slope))
    assert [f"{x:.1%}" for x in (_median(oos), max(oos), insample)] == ["5.1%", "12.0%", "3.6%"]
    assert rows["a", "MR&VS"] == ["a", "b", "MR&VS", "4", "5.1%", "12.0%", "3.6%", "0"]


def test_the_same_rule_as_plan_memory_from(two) -> None:
    """Every prediction is what ``plan --memory-from A`` plans on B's machine for that step."""
    a, b = two
    write_calibration(a)
    res = read_results(b)
    here = results_identities(res.nodes.to_pandas(), res.cells.to_pandas())["run-b-n0"]
    est, text = plan_estimator(a, here)
    assert est is not None, text
    d, notes = predict_folder(load([a, b]), str(b))
    assert notes == [] and len(d) == 4
    assert list(d["predicted"]) == [est(int(px), PAPER) for px in d["pass_px"]]


def test_a_node_of_another_machine_is_not_predicted_and_the_report_says_why(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", "run-a", A)
    close = _folder(tmp_path / "close", "run-c", B, memory_bytes=int(256 * 2**30 * 1.04))   # within 5 %
    assert [r[3] for r in out_of_sample(load([a, close])).rows if r[0] == "close"] == ["2", "2", "4"]
    other = _folder(tmp_path / "b", "run-b", B, cpu_model="Other CPU 1234", memory_bytes=512 * 2**30)
    t = out_of_sample(load([a, other]))
    assert [r[:4] for r in t.rows] == [["a", "—", "—", "0"], ["b", "—", "—", "0"]]
    assert ("b: node run-b-n0 not predicted (4 steps): no node the fit came from has its identity (node "
            "run-a-n0 (a) does not match: CPU model 'Generated CPU 9999 (benchmark input)' in the fit, "
            "'Other CPU 1234' here, memory 256.0 GiB in the fit, 512.0 GiB here (more than 5% apart))") in t.note
    assert "a: node run-a-n0 not predicted (4 steps)" in t.note


def test_a_node_name_reused_by_another_machine_is_matched_by_identity(tmp_path: Path) -> None:
    """Two runs of one sweep whose node carries the same name on different CPUs: the merged
    node table keeps one row per name, the check must still see each folder's own machine."""
    a = _folder(tmp_path / "a", "same", A)
    b = _folder(tmp_path / "b", "same", B, cpu_model="Other CPU 1234")
    t = out_of_sample(load([a, b]))
    assert all(r[3] == "0" for r in t.rows)
    assert "node same-n0 (a) does not match: CPU model" in t.note


def test_a_fit_predicting_zero_or_less_is_a_fit_error(tmp_path: Path) -> None:
    # A: 1000 B/px from −1.8 GB, exact. B's 1.5 MP step is planned at −0.3 GB; its 4 MP step at 2.2 GB
    steep = {"MR&VS": [(1 * MP, 1.3 * GB)] + [(x * MP, (-1.8 + x) * GB) for x in (2, 3, 4, 5)]}
    a = _folder(tmp_path / "a", "run-a", steep)
    b = _folder(tmp_path / "b", "run-b", {"MR&VS": [(1 * MP, 1.3 * GB), (1.5 * MP, 1.5 * GB), (4 * MP, 2.0 * GB)]})
    row = next(r for r in out_of_sample(load([a, b])).rows if r[0] == "b")
    assert row[3:6] == ["2", "10.0%", "10.0%"]             # counted, and the other step still measured
    assert row[7].text == "1: predicts ≤ 0 bytes" and row[7].cls == "flag"
    only = _folder(tmp_path / "c", "run-c", {"MR&VS": [(1 * MP, 1.3 * GB), (1.5 * MP, 1.5 * GB)]})
    row = next(r for r in out_of_sample(load([a, only])).rows if r[0] == "c")
    assert row[3] == "1" and row[4].text == "fit error: predicts ≤ 0" and row[4].cls == "flag"


def test_single_folder_says_in_sample_only_and_two_folders_show_the_table(tmp_path: Path, two) -> None:
    a, b = two
    # one folder: the section is there, empty, and says why (the table as the report renders it)
    one = out_of_sample(load([a]))
    assert one.title == TITLE and one.rows == [] and one.empty == SINGLE
    # two folders: the whole report (one render: each costs seconds) shows the table
    both = build_report([a, b], tmp_path / "both.html").read_text()
    assert TITLE in both and SINGLE not in both and "<td>16.7%</td>" in both


def test_generated_folders_of_several_clusters(tmp_path: Path) -> None:
    """make_results' folders: every predicted step is a timed step of its folder, at most."""
    a = make_results(tmp_path / "a", clusters=["x", "y"], runs=1, steps=4)
    b = make_results(tmp_path / "b", clusters=["z"], runs=1, steps=4, seed=3)
    m = load([a, b])
    d, notes = predict_folder(m, str(b))
    timed_b = m.steps[(m.steps["source"] == str(b)) & ~m.steps["warmup"]]
    assert notes == [] and 0 < len(d) <= len(timed_b)
    assert set(d["fitted_on"]) == {"a"}


def test_a_folder_with_nothing_to_predict_says_so(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", "run-a", A)
    warm = _folder(tmp_path / "w", "run-w", {"MR&VS": [(1 * MP, 1.3 * GB)]})     # its warm-up step only
    t = out_of_sample(load([a, warm]))
    assert [r[:4] for r in t.rows if r[0] == "w"] == [["w", "—", "—", "0"]]
    assert "w: nothing to predict: no timed step whose peak is its own" in t.note
    assert "a: node run-a-n0 not predicted (4 steps): no node the fit came from has its identity (the other " \
           "folder(s) have no fitted step)" in t.note
