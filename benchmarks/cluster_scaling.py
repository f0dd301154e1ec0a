"""Wall time of one sweep on 1 vs 2 Ray nodes of the same cluster, side by side in one run.

    .venv/bin/python benchmarks/cluster_scaling.py [sweeps/smoke.yaml]

The nodes are simulated with ray.cluster_utils.Cluster on this one machine, so they share
its cores: the ratio shows how well the driver overlaps cells across nodes (actor start-up,
data preparation, training), not how a real second machine would add compute.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ray.cluster_utils import Cluster


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
                               capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(r.stdout + r.stderr)
        return dt
    finally:
        c.shutdown()


def main() -> None:
    sweep = sys.argv[1] if len(sys.argv) > 1 else "sweeps/smoke.yaml"
    run(sweep, 1)  # warm the dataset and input-set caches so both timings exclude them
    one = run(sweep, 1)
    two = run(sweep, 2)
    print(f"{sweep}: 1 node {one:.1f} s, 2 nodes {two:.1f} s, ratio 2-node/1-node {two / one:.2f}")


if __name__ == "__main__":
    main()
