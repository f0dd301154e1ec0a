"""Issue 17 in the report: RSS against distinct pass shapes, the kernel caches' share of
the peak next to Table 2, the kernel-cache and rounding choices named (generated results)."""
from __future__ import annotations

import pytest

from hrvs_ray.remedy_axes import Remedy
from hrvs_ray.report import render
from hrvs_ray.report.kernel_cache_section import cache_share
from hrvs_ray.report.load import load
from tests.fixtures.report_results import downgrade_to_v1, make_results, svg_text

# report rendering / torch training: seconds per test, so out of the fast lane (README)
pytestmark = pytest.mark.slow


def test_report_shows_the_caches_share_next_to_table_2_and_rss_against_shapes(tmp_path):
    setups = (Remedy(), Remedy(kernel_cache="off"), Remedy(shape_round=32), Remedy(shape_round=32, kernel_cache="off"))
    html = render([make_results(tmp_path / "r", input_sets=("MR&VS", "HR&VS"), remedies=setups, steps=6,
                                      record_shapes=True)])
    assert "Table 2b. Kernel caches&#x27; share of the peak" in html
    t2, t2b, t3 = (html.index(s) for s in ("Table 2. Main memory", "Table 2b.", "Table 3."))
    assert t2 < t2b < t3                                          # next to Table 2
    part = html[t2b:t3]
    assert part.count("<tr>") == 1 + 4                            # header + 2 setups × 2 input sets
    assert "pad(r32)+fp32+nchw" in part and "kc-off" not in part.split("</thead>")[1]
    assert "Memory and shape diversity" in html and "distinct pass shapes seen" in svg_text(html)
    assert "kernel caches off" in html or "kc-off" in html        # the remedies tables name the choice
    # results written before schema 3 record no shapes: no figure, no table
    old = render([downgrade_to_v1(make_results(tmp_path / "v1", input_sets=("MR&VS",), runs=1))])
    assert "Memory and shape diversity" not in old and "Table 2b." not in old


def test_share_is_computed_from_the_pair_of_peaks(tmp_path):
    m = load([make_results(tmp_path / "r", input_sets=("HR&VS",), runs=1, steps=5,
                           remedies=(Remedy(), Remedy(kernel_cache="off")), record_shapes=True)])
    t = cache_share(m)
    assert len(t.rows) == 1
    t_ = m.steps[~m.steps["warmup"]]
    on = t_[t_["kernel_cache"] == "default"]["peak_rss_bytes"].max()
    off = t_[t_["kernel_cache"] == "off"]["peak_rss_bytes"].max()
    assert t.rows[0][7].text == f"{100 * (on - off) / on:.0f} %"
    assert float(t.rows[0][8]) == pytest.approx(3 * 2e7 / 1e9, rel=0.01)   # kept 20 MB per new shape
    assert float(t.rows[0][9]) == 0
