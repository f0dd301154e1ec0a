"""The benchmark harness (benchmarks/harness.py): repeats summarised by median, quartiles and
range, --quick swaps in the small sizes, the JSON carries every value and the provenance, and
a failed check exits 1. A toy benchmark with known values, so every figure is checkable."""
from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pytest

from benchmarks.harness import Benchmark, default_out, main, summarize


def test_summary_of_known_values() -> None:
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["n"], s["median"], s["min"], s["max"]) == (5, 3.0, 1.0, 5.0)
    assert (s["q1"], s["q3"], s["iqr"]) == (2.0, 4.0, 2.0)
    assert s["values"] == [5.0, 1.0, 3.0, 2.0, 4.0]          # in the order they were measured
    one = summarize([7.0])
    assert (one["median"], one["iqr"], one["min"], one["max"]) == (7.0, 0.0, 7.0, 7.0)
    with pytest.raises(ValueError):
        summarize([])


def test_default_file_is_dated_and_marks_quick_runs() -> None:
    day = dt.date(2026, 12, 7)
    assert default_out("plan_speed", False, day).name == "2026-12-07-plan_speed.json"
    assert default_out("plan_speed", True, day).name == "2026-12-07-plan_speed-quick.json"
    assert default_out("x", False, day).parent.name == "results"


def _toy(limit: float) -> Benchmark:
    def add(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--size", type=int, default=100)

    def setup(args: argparse.Namespace, _stack: object) -> dict[str, int]:
        return {"calls": 0}

    def once(args: argparse.Namespace, ctx: dict[str, int]) -> dict[str, float]:
        ctx["calls"] += 1
        return {"work_s": args.size * ctx["calls"], "ratio": 2.0}

    def check(_args: argparse.Namespace, summary: dict) -> list[str]:
        return [] if summary["work_s"]["max"] <= limit else ["too slow"]

    return Benchmark("toy", "a toy", once, setup=setup, add_arguments=add, quick={"size": 1},
                     units={"ratio": "x"}, check=check, info=lambda a, ctx: {"size": a.size})


def test_repeats_json_and_provenance(tmp_path: Path) -> None:
    out = tmp_path / "toy.json"
    assert main(_toy(limit=1e9), ["--repeats", "3", "--size", "10", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    work = doc["summary"]["work_s"]
    assert work["values"] == [10.0, 20.0, 30.0] and work["median"] == 20.0 and work["unit"] == "s"
    assert doc["summary"]["ratio"]["unit"] == "x"
    assert (doc["repeats"], doc["quick"], doc["info"], doc["options"]["size"]) == (3, False, {"size": 10}, 10)
    prov = doc["provenance"]
    assert prov["hrvs_ray_version"] and "git_revision" in prov and "container_image" in prov
    assert prov["host"]["cores"] >= 1 and "cpu_model" in prov["host"]
    assert doc["problems"] == []


def test_quick_uses_small_sizes_and_one_repeat(tmp_path: Path) -> None:
    out = tmp_path / "q.json"
    assert main(_toy(limit=1e9), ["--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["quick"] and doc["repeats"] == 1 and doc["summary"]["work_s"]["values"] == [1.0]


def test_a_failed_check_exits_1_and_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "slow.json"
    assert main(_toy(limit=15.0), ["--repeats", "2", "--size", "10", "--out", str(out)]) == 1
    assert json.loads(out.read_text())["problems"] == ["too slow"]


def test_conclusions_see_every_repeat_and_land_in_the_json(tmp_path: Path) -> None:
    seen: list[list[float]] = []

    def conclude(_args: argparse.Namespace, values: dict) -> dict:
        seen.append(list(values["work_s"]))
        return {"work grows": values["work_s"][-1] > values["work_s"][0]}

    bench = _toy(limit=1e9)
    bench.conclude = conclude
    out = tmp_path / "c.json"
    assert main(bench, ["--repeats", "3", "--size", "2", "--out", str(out)]) == 0
    assert seen == [[2.0, 4.0, 6.0]]
    assert json.loads(out.read_text())["conclusions"] == {"work grows": True}


def test_harness_overhead_states_a_ratio_within_3_percent_only_when_its_interval_is() -> None:
    from benchmarks.harness_overhead import conclude, ratio_interval

    g, lo, hi = ratio_interval([1.0, 1.02, 0.98, 1.01, 0.99])
    assert abs(g - 1.0) < 0.002 and lo < 1 < hi
    # t with 4 degrees of freedom: half-width 2.776 * sd / sqrt(5) on the logs
    assert hi / g == pytest.approx(1 + 2.776 * 0.0158 / 5 ** 0.5, abs=0.002)
    out = conclude(argparse.Namespace(), {"forked_ratio": [1.0, 1.01, 0.99, 1.0, 1.005],
                                          "fresh_ratio": [1.2, 0.8, 1.1, 0.9, 1.0],
                                          "bare+trim_ratio": [1.06, 1.07, 1.05, 1.06, 1.08]})
    assert out["forked ÷ bare"]["verdict"] == "within ±3 % of bare"
    assert out["fresh ÷ bare"]["verdict"].startswith("not shown")
    assert out["bare+trim ÷ bare"]["verdict"] == "measurably slower than bare"
    assert conclude(argparse.Namespace(), {"forked_ratio": [1.0]})["forked ÷ bare"]["ci95"] is None
