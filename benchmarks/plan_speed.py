"""How long `hrvs-ray plan` takes on the paper-sized sweeps (metadata only), in fresh processes.

    python -m benchmarks.plan_speed [--batches 10] [--repeats 3] [--quick]

Times `plan SWEEP --format json` for sweeps/full.yaml and sweeps/remedies.yaml (3 batching
policies × 8 settings) on the MAMe shape table, each run in a fresh interpreter (imports
included, as a user pays them). The goal is under 2 s.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from benchmarks.harness import REPO, Benchmark, main

SWEEPS = ("full", "remedies")
LIMIT_S = 2.0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--batches", type=int, default=10)


def once(args: argparse.Namespace, _ctx: Any) -> dict[str, float]:
    got = {}
    for sweep in SWEEPS:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hrvs_ray.cli", "plan", f"sweeps/{sweep}.yaml", "--batches",
                        str(args.batches), "--format", "json"], check=True, capture_output=True, cwd=REPO)
        got[f"plan_{sweep}_s"] = time.perf_counter() - t0
    return got


def check(_args: argparse.Namespace, summary: dict[str, dict[str, Any]]) -> list[str]:
    return [f"{k}: median {s['median']:.2f} s is over the {LIMIT_S:.0f} s goal"
            for k, s in summary.items() if s["median"] > LIMIT_S]


BENCH = Benchmark("plan_speed", __doc__.splitlines()[0], once, add_arguments=add_arguments,
                  quick={"batches": 2}, check=check)

if __name__ == "__main__":
    sys.exit(main(BENCH))
