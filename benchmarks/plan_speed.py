"""How long `hrvs-ray plan` takes on the paper-sized sweeps (metadata only), in fresh processes.

    python benchmarks/plan_speed.py [--batches 10] [--repeat 3]

Times `plan SWEEP --format json` for sweeps/full.yaml and sweeps/remedies.yaml (3 batching
policies × 8 settings) on the MAMe shape table, each run in a fresh interpreter (imports
included, as a user pays them). The goal is under 2 s.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for sweep in ("sweeps/full.yaml", "sweeps/remedies.yaml"):
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "hrvs_ray.cli", "plan", sweep, "--batches", str(a.batches),
                            "--format", "json"], check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        print(f"{sweep}: {statistics.median(times):.2f} s median of {a.repeat} (--batches {a.batches})")


if __name__ == "__main__":
    main()
