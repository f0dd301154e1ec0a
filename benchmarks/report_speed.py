"""Time ``build_report`` on a GENERATED result set of the size the issue names:
3 clusters × 3 scopes × 3 input sets × 3 runs × 11 steps (1 warm-up + 10 timed), one results
folder per cluster (merged, as after a multi-cluster campaign).

The inputs are seeded synthetic numbers written with the real schemas through
hrvs_ray.store.ResultStore (``tests.fixtures.report_results``, imported as a package from the
repository root); they are benchmark input, not measurements. Only build_report is timed,
not the generation. ``--quick``: one cluster, one scope, 2 runs.

    python -m benchmarks.report_speed [--repeats N] [--quick]     # target: < 30 s on 2 cores
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Benchmark, main
from hrvs_ray.report import build_report
from tests.fixtures.report_results import make_results

CLUSTERS = ("gen-cluster-a", "gen-cluster-b", "gen-cluster-c")
SCOPES = ("cores:4", "socket", "node")
LIMIT_S = 30.0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--clusters", type=int, default=len(CLUSTERS), choices=range(1, len(CLUSTERS) + 1))
    ap.add_argument("--scopes", type=int, default=len(SCOPES), choices=range(1, len(SCOPES) + 1))
    ap.add_argument("--runs", type=int, default=3)


def setup(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hrvs-report-bench-")))
    clusters, scopes = CLUSTERS[:args.clusters], SCOPES[:args.scopes]
    dirs = [make_results(tmp / c, sweep="generated-bench", clusters=[c], scopes=scopes, runs=args.runs,
                         steps=11, seed=0, speeds={c: 1.0 + 0.4 * i})
            for i, c in enumerate(clusters)]
    return {"tmp": tmp, "dirs": dirs, "clusters": clusters, "scopes": scopes}


def info(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    return {"clusters": len(ctx["clusters"]), "scopes": len(ctx["scopes"]), "input_sets": 3, "runs": args.runs,
            "steps_per_cell": 11, "step_rows": len(ctx["clusters"]) * len(ctx["scopes"]) * 3 * args.runs * 11,
            "folders": len(ctx["dirs"])}


def once(_args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, float]:
    t0 = time.perf_counter()
    out = build_report(ctx["dirs"], ctx["tmp"] / "report.html")
    return {"build_report_s": time.perf_counter() - t0, "report_bytes": out.stat().st_size}


def check(args: argparse.Namespace, summary: dict[str, dict[str, Any]]) -> list[str]:
    # the limit is the issue's, for the size; a quick run only shows the benchmark works
    if args.quick:
        return []
    best = summary["build_report_s"]["min"]
    return [] if best < LIMIT_S else [f"build_report took {best:.1f} s at best, over the {LIMIT_S:.0f} s limit"]


BENCH = Benchmark("report_speed", __doc__.splitlines()[0], once, setup=setup, add_arguments=add_arguments,
                  quick={"clusters": 1, "scopes": 1, "runs": 2}, check=check, info=info)

if __name__ == "__main__":
    sys.exit(main(BENCH))
