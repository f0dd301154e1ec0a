"""Work that runs on cluster nodes. Plain classes and functions: the driver has them wrapped
through ``ray_io`` at launch, so they stay importable and testable without Ray.

Each cell gets a fresh process: placement, thread count and the kernel-cache environment are
set up before torch is imported, and the process's memory peak and counters are the cell's
own. In a sweep that process is a fork of the node's zygote (``run_forked_cell``, ``zygote``);
the tests also run ``CellRunner`` in a process of its own.
"""
from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..config import DatasetSpec
from ..node.affinity import AppliedPlacement
from ..node.topology import ScopePlacement, ScopeUnavailable, read_topology, resolve_scope

if TYPE_CHECKING:
    from ..plan.cells import CellSpec
    from .records import CellOutcome, ProcessFacts


def probe_node(scopes: list[str]) -> dict[str, Any]:
    """Describe this node and map each scope to CPUs (or say why it cannot be provided)."""
    from ..node.description import collect_node_info
    from ..node.sysfs import TopologyError
    from .provenance import code_identity

    try:
        topo = read_topology("/")
        info = collect_node_info("/", topo=topo)
    except TopologyError as e:
        # The node is unusable, and every scope says why (the driver skips cells with the reason).
        reason = f"node unusable: {e}"
        return {"info": {"unusable": reason}, "placements": {s: reason for s in scopes},
                "hostname": socket.gethostname(), "pid": os.getpid(), "unusable": reason, "code": code_identity()}
    # Ray workers inherit the raylet's CPU mask: the node's cgroup cpuset or SLURM allocation.
    allowed = os.sched_getaffinity(0)
    placements: dict[str, Any] = {}
    for scope in scopes:
        try:
            placements[scope] = resolve_scope(topo, scope, allowed=allowed)
        except ScopeUnavailable as e:
            placements[scope] = str(e)
    # the measured compute ceiling of each scope, each in a short-lived process of its own
    from ..probes.ceiling import measure_placements
    info["ceilings"] = measure_placements(placements)
    return {"info": info, "placements": placements, "hostname": socket.gethostname(), "pid": os.getpid(),
            "code": code_identity()}


@dataclass(frozen=True)
class ProcessSetup:
    """What :func:`prepare_process` did to this process before torch was imported."""
    applied: AppliedPlacement
    setup_error: str | None       # the kernel-cache setting could not be applied: the cell fails with it
    torch_preloaded: bool         # torch was imported before the placement (its pool kept the old mask)


def prepare_process(placement: ScopePlacement, kernel_cache: str) -> ProcessSetup:
    """Kernel-cache environment and placement, then ``import torch``: in this order, because
    the caches and the thread pool read their settings once, when torch starts."""
    from ..node.affinity import apply_placement
    from ..train.kernel_cache import KernelCacheError, apply_kernel_cache

    preloaded = "torch" in sys.modules
    error = None
    try:
        apply_kernel_cache(kernel_cache)
    except KernelCacheError as e:
        error = str(e)
    applied = apply_placement(placement)
    import torch  # noqa: F401 - the point of this function
    return ProcessSetup(applied, error, preloaded)


class CellRunner:
    """One cell in one fresh process (or a fresh fork of a zygote), placed on a scope's CPUs."""

    def __init__(self, placement: ScopePlacement, llc_event: str, kernel_cache: str = "default",
                 forked: ProcessSetup | None = None) -> None:
        from ..probes.allocator import detect_allocator
        from ..probes.counters import open_counters

        # ``forked``: this process is a fork of a zygote that already did the setup below and
        # imported torch, and ran nothing since (cluster/zygote.py)
        setup = forked or prepare_process(placement, kernel_cache)
        self.torch_preloaded = setup.torch_preloaded
        self.kernel_cache, self.setup_error = kernel_cache, setup.setup_error
        if forked is not None and self.setup_error is None:
            from ..train.kernel_cache import kernel_cache_mismatch

            self.setup_error = kernel_cache_mismatch(kernel_cache)
        self.placement = placement
        self.applied = setup.applied
        # Opened on the threads alive now; each step's begin() adds a group for every thread
        # started since (torch's pool, started below), so every compute thread is its own group.
        self.counters = open_counters(llc_event)
        import torch

        from ..node.affinity import check_torch_threads

        torch.set_num_threads(self.applied.threads)
        self.torch_threads = check_torch_threads(self.applied.threads)
        # start torch's intra-op pool now: each step's counters cover the threads alive at its
        # start (one group per thread), so the pool must not first appear inside a step
        torch.ones(256, 256) @ torch.ones(256, 256)
        self.allocator = detect_allocator()   # after torch: its libraries are mapped now

    def ready(self) -> dict[str, Any]:
        return {"cpus": list(self.applied.cpus), "threads": self.torch_threads, "pid": os.getpid()}

    def run(self, spec: CellSpec, dataset: DatasetSpec, node: str) -> CellOutcome:
        """Run the cell; exceptions come back as a failed outcome (the process stays sane)."""
        from ..train.cell import run_cell
        from .failures import Failure, FailureKind
        from .records import CellOutcome

        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        facts = self._facts()
        if self.setup_error is None and spec.remedy.kernel_cache != self.kernel_cache:
            self.setup_error = (f"cell needs kernel_cache {spec.remedy.kernel_cache!r}, its process was "
                                f"started with {self.kernel_cache!r}")
        if self.setup_error is not None:
            failure = Failure(FailureKind.CELL_ERROR, self.setup_error)
            return CellOutcome("failed", str(failure), started, datetime.now(timezone.utc),
                               time.perf_counter() - t0, facts=facts)
        try:
            result = run_cell(spec, dataset, node, len(self.applied.cpus), self.counters)
        except Exception as e:  # a cell's own failure is data, not a crash of the sweep
            failure = Failure(FailureKind.CELL_ERROR, f"{type(e).__name__}: {e}")
            return CellOutcome("failed", f"{failure}\n{traceback.format_exc(limit=6)}",
                               started, datetime.now(timezone.utc), time.perf_counter() - t0, facts=facts)
        return CellOutcome("ok", None, started, datetime.now(timezone.utc), time.perf_counter() - t0,
                           prepare_seconds=result.prepare_seconds, images_decoded=result.images_decoded,
                           images_cached=result.images_cached, baseline_rss_bytes=result.baseline_rss_bytes,
                           compiler_version=result.compiler_version,
                           compile_cache_state=result.compile_cache_state, facts=facts, steps=result.steps)

    def _facts(self) -> ProcessFacts:
        from importlib.metadata import version

        import torch

        from .. import __version__
        from .provenance import collect_provenance
        from .records import ProcessFacts, core_kinds_json

        warnings = list(self.applied.warnings)
        if self.torch_preloaded:
            warnings.append("torch was imported before placement")
        warnings += [w for w in (getattr(self.placement, "numa_warning", None),) if w]
        values = {"threads": self.torch_threads, "cpus": tuple(self.applied.cpus),
                  "numa_binding": self.applied.numa_binding,
                  "placement_warning": "; ".join(warnings) or None,
                  "core_kinds": core_kinds_json(getattr(self.placement, "core_kinds", None)),
                  "hostname": socket.gethostname(), "pid": os.getpid(), "torch_version": torch.__version__,
                  "ray_version": version("ray"), "hrvs_ray_version": __version__,
                  "python_version": sys.version.split()[0], "allocator": self.allocator}
        return ProcessFacts(**{**ProcessFacts.known(collect_provenance()), **values})

    def close(self) -> None:
        self.counters.close()


def run_forked_cell(placement: ScopePlacement, kernel_cache: str, token: str, node_id: str, spec: CellSpec,
                    dataset: DatasetSpec, node: str) -> CellOutcome:
    """A cell's Ray task. It books the CPUs the cell runs on, so Ray places nothing beside
    it, and has the cell run in a fresh fork of the node's zygote for the cell's placement
    and kernel-cache setting (``zygote``): the ~7 s of importing torch are paid once per
    node and setting, not per cell, and a task reuses Ray's worker process where an actor
    would start a new one (~1 s, and work beside the next cell). Cancelling the task (a
    force-cancel ends its worker) kills the cell."""
    from .zygote import connect, run_forked

    conn = connect(token, node_id, placement, kernel_cache)
    try:
        return run_forked(conn, (spec, dataset, node))
    finally:
        conn.close()


def stop_zygotes(token: str) -> int:
    """Stop this node's zygotes of the sweep ``token`` (the driver calls it on every node)."""
    from .zygote import stop_all

    return stop_all(token)
