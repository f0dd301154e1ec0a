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
