"""One cell's process: placement, thread count and the kernel-cache environment set up
before torch is imported, then the cell run by :class:`CellRunner`. No Ray import.

Each cell gets a process of its own, so its memory peak and counters are the cell's own.
That process is either a fork of the node's zygote (``zygote``: set up once, torch
imported, nothing run) or, with ``execution.process: fresh``, a new interpreter started
with exec that imports torch only after the set-up (:func:`main`, the reference a fork is
checked against). :func:`serve_cell` runs the cell in either and answers the asker.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NoReturn

from ..config import DatasetSpec
from ..node.affinity import AppliedPlacement
from ..node.topology import ScopePlacement
from .wire import die_with_parent, name_process, send

if TYPE_CHECKING:
    from ..plan.cells import CellSpec
    from .records import CellOutcome, ProcessFacts


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
    # numpy's OpenBLAS starts its worker threads when numpy is loaded (torch and pyarrow load
    # it), and a zygote must hold no thread when it forks. The cells never compute with
    # numpy's BLAS (torch has its own), so numpy gets one thread, in forked and fresh cells alike.
    if "numpy" not in sys.modules:
        blas = os.environ.get("OPENBLAS_NUM_THREADS")
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        import numpy  # noqa: F401 - loaded now, with one BLAS thread
        if blas is not None:
            os.environ["OPENBLAS_NUM_THREADS"] = blas
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
        self.process = "fork" if forked is not None else "fresh"
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
                  "python_version": sys.version.split()[0], "allocator": self.allocator,
                  "process": self.process}
        return ProcessFacts(**{**ProcessFacts.known(collect_provenance()), **values})

    def close(self) -> None:
        self.counters.close()


def serve_cell(conn: Connection, placement: ScopePlacement, kernel_cache: str, request: tuple,
               setup: ProcessSetup | None = None) -> NoReturn:
    """In the cell's own process (a fork with the zygote's ``setup``, or a fresh one): run
    the cell, send ``("ok", outcome)`` or ``("died", words)`` on ``conn``, exit."""
    name_process("hrvs-cell")
    code = 1
    try:
        spec, dataset, node = request
        runner = CellRunner(placement, spec.counters.llc, kernel_cache, forked=setup)
        outcome = runner.run(spec, dataset, node)
        runner.close()
        send(conn, ("ok", outcome))
        code = 0
    except BaseException as e:  # noqa: BLE001 - whatever it was, the asker gets the words
        with contextlib.suppress(Exception):
            send(conn, ("died", f"the cell's process failed: {type(e).__name__}: {e}\n"
                                f"{traceback.format_exc(limit=6)}"))
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def main(argv: list[str]) -> NoReturn:
    """A fresh cell process (``execution.process: fresh``), exec'd by its monitor:
    ``python -m hrvs_ray.cluster.cell_process CONN_FD REQUEST_FD MONITOR_PID``. Nothing but
    this module and its pure imports is loaded before the set-up: torch comes after it."""
    conn_fd, request_fd, monitor = (int(a) for a in argv)
    die_with_parent(monitor)
    with os.fdopen(request_fd, "rb") as f:
        placement, kernel_cache, request = pickle.load(f)
    serve_cell(Connection(conn_fd), placement, kernel_cache, request)


if __name__ == "__main__":
    main(sys.argv[1:])
