"""Time ``build_report`` on a GENERATED result set of the size the issue names:
3 clusters × 3 scopes × 3 input sets × 3 runs × 11 steps (1 warm-up + 10 timed), one results
folder per cluster (merged, as after a multi-cluster campaign).

The inputs are seeded synthetic numbers written with the real schemas through
hrvs_ray.store.ResultStore (tests/fixtures/report_results.py); they are benchmark input,
not measurements. Only build_report is timed, not the generation.

    python benchmarks/report_speed.py [--repeat N]     # target: < 30 s on 2 cores
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from report_results import make_results  # noqa: E402

from hrvs_ray.report import build_report  # noqa: E402

CLUSTERS = ("gen-cluster-a", "gen-cluster-b", "gen-cluster-c")
SCOPES = ("cores:4", "socket", "node")
LIMIT_S = 30.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hrvs-report-bench-") as tmp:
        dirs = [make_results(Path(tmp) / c, sweep="generated-bench", clusters=[c], scopes=SCOPES, runs=3,
                             steps=11, seed=0, speeds={c: 1.0 + 0.4 * i})
                for i, c in enumerate(CLUSTERS)]
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            out = build_report(dirs, Path(tmp) / "report.html")
            times.append(time.perf_counter() - t0)
        size = out.stat().st_size
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"generated input: {len(CLUSTERS)} clusters x {len(SCOPES)} scopes x 3 input sets x 3 runs x 11 steps "
          f"= {len(CLUSTERS) * len(SCOPES) * 27 * 11 // 3} step rows in {len(dirs)} folders")
    print(f"build_report: {min(times):.2f} s best of {len(times)} (all: {', '.join(f'{t:.2f}' for t in times)}); "
          f"report {size / 1e6:.2f} MB; {cpus} CPUs visible; limit {LIMIT_S:.0f} s")
    return 0 if min(times) < LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
