"""Work that runs on cluster nodes. Plain classes and functions: the driver wraps them
with ``ray.remote`` at launch, so they stay importable and testable without Ray.

Each cell gets a fresh actor process: placement, thread count and counters are set up in
``__init__`` before torch is imported, and the process's memory peak and counters are the
cell's own. The driver kills the actor when the cell is done.
"""
from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from datetime import datetime, timezone
from typing import Any

from ..config import DatasetSpec
from ..probes.topology import ScopePlacement, ScopeUnavailable, read_topology, resolve_scope


def probe_node(scopes: list[str]) -> dict[str, Any]:
    """Describe this node and map each scope to CPUs (or say why it cannot be provided)."""
    from ..probes.nodeinfo import collect_node_info

    info = collect_node_info("/")
    topo = read_topology("/")
    # Ray workers inherit the raylet's CPU mask: the node's cgroup cpuset or SLURM allocation.
    allowed = os.sched_getaffinity(0)
    placements: dict[str, Any] = {}
    for scope in scopes:
        try:
            placements[scope] = resolve_scope(topo, scope, allowed=allowed)
        except ScopeUnavailable as e:
            placements[scope] = str(e)
    return {"info": info, "placements": placements, "hostname": socket.gethostname(), "pid": os.getpid()}


class CellRunner:
    """One cell in one fresh process, placed on a scope's CPUs."""

    def __init__(self, placement: ScopePlacement, llc_event: str) -> None:
        from ..probes.affinity import apply_placement
        from ..probes.counters import open_counters

        self.torch_preloaded = "torch" in sys.modules
        self.applied = apply_placement(placement)
        # Opened before torch exists, so its worker threads are counted (inherit) and
        # nothing has been computed yet by a thread pool we cannot see.
        self.counters = open_counters(llc_event)
        import torch

        from ..probes.affinity import check_torch_threads

        torch.set_num_threads(self.applied.threads)
        self.torch_threads = check_torch_threads(self.applied.threads)

    def ready(self) -> dict[str, Any]:
        return {"cpus": list(self.applied.cpus), "threads": self.torch_threads, "pid": os.getpid()}

    def run(self, spec_json: str, dataset: DatasetSpec, node: str) -> dict[str, Any]:
        """Run the cell; exceptions come back as a failed record (the process stays sane)."""
        import ray
        import torch

        from ..plan import CellSpec
        from ..provenance import collect_provenance
        from ..train.cell import run_cell
        from .. import __version__

        spec = CellSpec.from_json(spec_json)
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        record: dict[str, Any] = {
            "threads": self.torch_threads, "cpus": list(self.applied.cpus),
            "numa_binding": self.applied.numa_binding, "hostname": socket.gethostname(),
            "pid": os.getpid(), "torch_version": torch.__version__, "ray_version": ray.__version__,
            "hrvs_ray_version": __version__, "python_version": sys.version.split()[0],
            "started_at": started,
        }
        record.update(collect_provenance())
        if self.torch_preloaded:
            record["numa_binding"] = f"{record['numa_binding']}; warning: torch was imported before placement"
        steps = None
        try:
            result = run_cell(spec, dataset, node, len(self.applied.cpus), self.counters)
            steps = result.steps
            record.update(status="ok", error=None, prepare_seconds=result.prepare_seconds,
                          images_decoded=result.images_decoded, images_cached=result.images_cached)
        except Exception as e:  # a cell's own failure is data, not a crash of the sweep
            record.update(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}")
        record["finished_at"] = datetime.now(timezone.utc)
        record["wall_seconds"] = time.perf_counter() - t0
        return {"record": record, "steps": steps}

    def close(self) -> None:
        self.counters.close()
