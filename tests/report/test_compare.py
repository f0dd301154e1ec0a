"""``hrvs-ray compare``: matching, ratios with intervals, verdicts, exit codes, JSON.

Inputs are GENERATED results folders written through the real writer
(tests/fixtures/report_results.py); every expected ratio is computed here from the stored
rows (Σ seconds ÷ Σ megapixels), not from the generator's constants. The last test runs two
real tiny sweeps and compares them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hrvs_ray.cli import main
from hrvs_ray.report.compare import CompareError, compare
from hrvs_ray.report.compare_output import to_json, to_text
from tests.fixtures.report_results import make_results, stored_steps
from tests.helpers import hrvs, tiny_sweep_dict

# 3 scopes: a stratum (cluster × input set × precision) pools its run-to-run spread over them
ONE = dict(scopes=["node", "socket", "cores:4"], input_sets=["MR&VS", "HR&VS"], runs=2, steps=8)


def _ros(root: Path, px: str = "total_px"):
    s = stored_steps(root)
    s = s[~s["warmup"]]
    g = s.groupby(["cluster", "scope", "input_set"])
    return g["seconds"].sum() / (g[px].sum() / 1e6)


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["compare", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_slower_machine_is_a_regression_named_with_its_differences(tmp_path: Path, capsys) -> None:
    # two machines: two strata (cluster is one of its columns), each pooled over its 3 scopes
    base = make_results(tmp_path / "base", clusters=["old"], **ONE)
    new = make_results(tmp_path / "new", clusters=["fresh"], speeds={"fresh": 1.25}, noise_seed=5,
                       cell_over={"torch_version": "9.9.9"}, node_over={"cpu_model": "Other CPU"}, **ONE)
    rc, out, _ = _run(capsys, base, new, "--format", "json")
    doc = json.loads(out)
    assert rc == 1 and doc["exit_code"] == 1 and doc["regressions"] == 6
    assert doc["clusters"] == [{"base": "old", "new": "fresh"}]  # one cluster each: compared with each other
    assert {d["what"]: (d["base"], d["new"]) for d in doc["differences"]} == {
        "CPU model": (["Generated CPU 9999 (benchmark input)"], ["Other CPU"]),
        "torch version": (["2.14.1"], ["9.9.9"])}
    a, b = _ros(base), _ros(new)
    for g in doc["groups"]:
        want = b[("fresh", g["scope"], g["input_set"])] / a[("old", g["scope"], g["input_set"])]
        assert g["s_per_mp"]["ratio"] == pytest.approx(want, rel=1e-9)
        assert 1 < g["s_per_mp"]["low"] <= g["s_per_mp"]["ratio"] <= g["s_per_mp"]["high"]
        assert g["verdict"] == "slower" and g["regression"]
        assert g["peak_rss"]["ratio"] == pytest.approx(1.0)  # same batches, same generated memory
        assert g["steps_base"] == g["steps_new"] == 2 * 7
    rc, out, _ = _run(capsys, base, new)
    assert rc == 1 and "SLOWER p=" in out and "differs: torch version: base 2.14.1; new 9.9.9" in out
    assert "Holm-corrected, family-wise α = 0.05" in out and "6 group(s) beyond +5 %" in out
    assert "two strata" in doc["groups"][0]["interval_basis"] and "Welch" in doc["groups"][0]["interval_basis"]


@pytest.mark.slow
def test_a_remeasure_is_no_measurable_difference_and_exits_0(tmp_path: Path, capsys) -> None:
    base = make_results(tmp_path / "base", **ONE)
    new = make_results(tmp_path / "new", noise_seed=7, **ONE)
    rc, out, _ = _run(capsys, base, new, "--format", "json")
    doc = json.loads(out)
    assert rc == 0 and doc["differences"] == []
    assert all(g["verdict"] in ("equivalent", "inconclusive") and not g["regression"] for g in doc["groups"])
    # every test carries its raw and Holm-adjusted p-values; the family is every test together
    tests = [t for g in doc["groups"] for t in g["tests"]]
    assert doc["alpha"] == 0.05 and doc["correction"] == "holm" and doc["family_size"] == len(tests)
    assert all(t["p_slower_holm"] >= t["p_slower"] for t in tests)
    assert {t["metric"] for t in tests} == {"s_per_mp", "peak_rss_per_run"}   # s/inf-MP: the same ratio
    rc, out, _ = _run(capsys, base, new)
    assert rc == 0 and "no group beyond +5 % at family-wise α = 0.05: exit 0" in out


def test_faster_is_reported_and_not_a_failure(tmp_path: Path) -> None:
    base = make_results(tmp_path / "base", **ONE)
    new = make_results(tmp_path / "new", noise_seed=3, speeds={"gen-a": 0.8}, **ONE)
    c = compare(base, new)
    assert c.exit_code == 0 and {g.verdict for g in c.groups} == {"faster"}
    assert all(g.s_mp.high < 1 for g in c.groups)


def test_threshold_separates_a_small_measured_slowdown(tmp_path: Path) -> None:
    # 4 % slower with 2 % step noise over 4 runs of 39 steps: measurable, but under the default 5 %
    kw = dict(scopes=["node"], input_sets=["MR&VS"], runs=4, steps=40)
    base = make_results(tmp_path / "base", **kw)
    new = make_results(tmp_path / "new", noise_seed=11, speeds={"gen-a": 1.04}, **kw)
    default = compare(base, new)
    (g,) = default.groups
    assert g.verdict != "slower" and g.s_mp.low > 1
    assert default.exit_code == 0
    assert compare(base, new, threshold_pct=2.0).exit_code == 1
    assert compare(base, new, threshold_pct=2.0, alpha=1e-9).exit_code == 0   # a stricter family rate


def test_one_run_a_side_is_never_a_regression_without_a_known_spread(tmp_path: Path) -> None:
    kw = dict(scopes=["node", "socket"], input_sets=["MR&VS"], runs=1, steps=8)
    base = make_results(tmp_path / "base", **kw)
    new = make_results(tmp_path / "new", noise_seed=4, speeds={"gen-a": 1.3}, **kw)
    c = compare(base, new)
    # the steps' interval excludes 1, but one run says nothing about how much runs differ
    assert c.exit_code == 0 and c.family == 0 and all(g.verdict == "inconclusive" for g in c.groups)
    assert "not tested: no run-to-run spread known" in to_text(c)
    # a calibration folder of the same sweep (several runs) lends its strata's spread, and says so
    cal = make_results(tmp_path / "cal", noise_seed=8, **{**kw, "runs": 3})
    c = compare(base, new, noise_from=[cal])
    assert c.exit_code == 1 and c.family > 0
    assert f"noise borrowed from {cal}" in to_text(c) and to_json(c)["noise_from"] == [str(cal)]
    assert all("borrowed from" in t.interval.basis for g in c.groups for t in g.tests if t.tested)


def test_bad_alpha_is_bad_input(tmp_path: Path, capsys) -> None:
    rc, _, err = _run(capsys, tmp_path, tmp_path, "--alpha", "1.5")
    assert rc == 2 and "--alpha must be in (0, 1)" in err


@pytest.mark.slow
def test_clusters_matched_by_name_and_one_sided_groups_listed(tmp_path: Path, capsys) -> None:
    base = make_results(tmp_path / "base", clusters=["a", "b"], **ONE)
    new = make_results(tmp_path / "new", clusters=["a", "c"], noise_seed=2,
                       **{**ONE, "input_sets": ["MR&VS", "HR&VS", "LR&FS"]})
    doc = to_json(compare(base, new))
    assert doc["clusters"] == [{"base": "a", "new": "a"}]
    assert {(g["cluster_base"], g["input_set"]) for g in doc["groups"]} == {("a", "MR&VS"), ("a", "HR&VS")}
    assert {(d["cluster"], d["input_set"]) for d in doc["only_base"]} == {("b", "MR&VS"), ("b", "HR&VS")}
    assert {(d["cluster"], d["input_set"]) for d in doc["only_new"]} == {
        ("a", "LR&FS"), ("c", "MR&VS"), ("c", "HR&VS"), ("c", "LR&FS")}
    rc, out, _ = _run(capsys, base, new)
    assert rc in (0, 1) and "only in base: b node MR&VS" in out  # listed, not fatal


@pytest.mark.slow
def test_different_images_or_nothing_matching_is_bad_input(tmp_path: Path, capsys) -> None:
    base = make_results(tmp_path / "base", **ONE)
    other = make_results(tmp_path / "other", seed=9, **ONE)  # another seed: other batches
    rc, _, err = _run(capsys, base, other)
    assert rc == 2 and "trained on different images (batch fingerprints differ)" in err
    elsewhere = make_results(tmp_path / "elsewhere", **{**ONE, "input_sets": ["LR&FS"]})
    rc, _, err = _run(capsys, base, elsewhere)
    assert rc == 2 and "no group matches" in err
    rc, _, err = _run(capsys, base, tmp_path / "missing")
    assert rc == 2 and "missing: no such results folder" in err
    with pytest.raises(CompareError):
        compare(base, other)


@pytest.mark.slow
def test_two_real_tiny_sweeps_compare(tmp_path: Path, write_sweep) -> None:
    sweep = write_sweep(tiny_sweep_dict(tmp_path, name="cmp"))
    outs = [tmp_path / "r1", tmp_path / "r2"]
    for out in outs:
        r = hrvs("sweep", str(sweep), "--out", str(out), "--no-progress", "--no-report", cwd=tmp_path, timeout=420)
        assert r.returncode == 0, r.stdout + r.stderr
    r = hrvs("compare", *map(str, outs), "--format", "json", cwd=tmp_path, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == r.returncode
    assert len(doc["groups"]) == 3 and not doc["only_base"] and not doc["only_new"]
    assert doc["differences"] == []  # the same machine and software twice
    a, b = _ros(outs[0]), _ros(outs[1])
    for g in doc["groups"]:
        key = (g["cluster_base"], g["scope"], g["input_set"])
        assert g["s_per_mp"]["ratio"] == pytest.approx(b[key] / a[key], rel=1e-9)
        assert g["s_per_mp"]["low"] <= g["s_per_mp"]["ratio"] <= g["s_per_mp"]["high"]
        assert "one run" in g["interval_basis"]
