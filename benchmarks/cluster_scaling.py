"""Wall time of one sweep on 1 vs 2 Ray nodes of the same cluster, side by side in one run.

    python -m benchmarks.cluster_scaling [--sweep sweeps/smoke.yaml] [--repeats 3] [--quick]

The nodes are simulated with ray.cluster_utils.Cluster on this one machine, so they share
its cores: the ratio shows how well the driver overlaps cells across nodes (actor start-up,
data preparation, training), not how a real second machine would add compute. A first,
untimed run warms the dataset and input-set caches so both timings exclude them
(``--quick`` skips it, so its first timing includes them).
"""
from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ray.cluster_utils import Cluster

from benchmarks.harness import REPO, Benchmark, main


def run(sweep: str, n_nodes: int) -> float:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "labels": {"cluster": "sim"},
                                                      "include_dashboard": False})
    try:
        for _ in range(n_nodes - 1):
            c.add_node(num_cpus=1, labels={"cluster": "sim"})
        c.wait_for_nodes()
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "hrvs_ray.cli", "sweep", sweep, "--out", str(Path(out) / "r"),
                                "--address", c.address, "--no-progress", "--no-report"],
                               capture_output=True, text=True, cwd=REPO)
            dt = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(r.stdout + r.stderr)
        return dt
    finally:
        c.shutdown()


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--sweep", default="sweeps/smoke.yaml")
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="skip the untimed warming run")


def setup(args: argparse.Namespace, _stack: contextlib.ExitStack) -> None:
    if args.warm:
        run(args.sweep, 1)


def once(args: argparse.Namespace, _ctx: Any) -> dict[str, float]:
    one = run(args.sweep, 1)
    two = run(args.sweep, 2)
    return {"one_node_s": one, "two_nodes_s": two, "two_over_one": two / one}


BENCH = Benchmark("cluster_scaling", __doc__.splitlines()[0], once, setup=setup, add_arguments=add_arguments,
                  quick={"warm": False}, units={"two_over_one": "x"})

if __name__ == "__main__":
    sys.exit(main(BENCH))
