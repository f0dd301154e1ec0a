"""The cell host: the owner of one node's zygote, and the one way to ask it for cells.

A sweep makes it a Ray actor per node, pinned there (``ray_io.start_host``), one at a
time per node: a node switches hosts when its next cell needs another placement, kernel-cache
setting or process kind. The host starts its zygote (``zygote``) as a child over a
socketpair it made, so the zygote is reachable by nobody else, needs no folder or socket
path in a shared ``/tmp``, and ends with its host (Ray also ends a worker's children with
the worker). Requests reach the host through Ray's authenticated channel.

Plain Python, no Ray: tests, ``tools/aa_check.py`` and ``benchmarks/harness_overhead.py`` use it directly, exactly as a
sweep's actor does::

    with CellHost(placement, kernel_cache) as host:       # process="fresh": the reference
        outcome = host.run(cell, dataset, node_name)
"""
from __future__ import annotations

import contextlib
import os
import pickle
import select
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from ..config import DatasetSpec
from ..errors import InternalError
from ..node.topology_types import ScopePlacement
from ..plan.cells import CellSpec
from .records import CellOutcome
from .wire import recv, send

START_TIMEOUT_S = 180.0      # importing torch on a loaded node can take a minute
STOP_TIMEOUT_S = 30.0
# What a host keeps resident on its node beside the cell it runs, for the memory pre-flight:
# a fork zygote has imported torch, torchvision and the training code (measured: 774 MB RSS
# on a 2-vCPU VM, torch 2.x CPU); a fresh host's zygote imports nothing.
RESIDENT_BYTES = {"fork": 800_000_000, "fresh": 50_000_000}
# jemalloc (bundled in pyarrow) starts a background thread when loaded; a zygote must hold
# no thread but its own when it forks. Set for fork and fresh processes alike.
QUIET_ENV = {"JE_ARROW_MALLOC_CONF": "background_thread:false"}


class ZygoteError(InternalError):
    """The zygote could not be started or reached, or refused a request."""


class CellProcessDied(InternalError):
    """The cell's process ended without a result: the monitor's words say how."""


def host_key(placement: ScopePlacement, kernel_cache: str, process: str, gpus: int) -> tuple:
    """What a host and its zygote fixed before importing torch: scopes with the same key
    may share a host; the cell still runs with its own scope's placement record."""
    return (tuple(placement.cpus), placement.threads, tuple(placement.numa_nodes), kernel_cache, process, gpus)


class CellHost:
    """One zygote and the cells forked (or exec'd) from it, one cell at a time."""

    def __init__(self, placement: ScopePlacement, kernel_cache: str, process: str = "fork") -> None:
        self.placement, self.kernel_cache, self.process = placement, kernel_cache, process
        self.last_fork: dict[str, Any] = {}      # the zygote's and monitor's threads at the last fork
        self._current: socket.socket | None = None
        self._lock = threading.Lock()
        self.ctrl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # the code this process imports, wherever it came from (Ray adds the job's folders to
        # a worker's sys.path, not to PYTHONPATH)
        env = {**os.environ, **QUIET_ENV, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "hrvs_ray.cluster.zygote", str(theirs.fileno())],
                                         pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.ctrl.send(pickle.dumps((placement, kernel_cache, process)))
        kind, value = self._ctrl_reply(START_TIMEOUT_S)
        if kind != "ready":
            self.close()
            raise ZygoteError(f"the zygote for scope {placement.scope} did not start: {value}")
        self.zygote: dict[str, Any] = value      # pid, threads

    def _ctrl_reply(self, timeout: float) -> tuple[str, Any]:
        if not select.select([self.ctrl], [], [], timeout)[0]:
            return "error", f"no answer within {timeout:.0f} s"
        msg = self.ctrl.recv(1 << 20)
        if not msg:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
            return "error", f"it exited with code {code}"
        return pickle.loads(msg)

    def run(self, spec: CellSpec, dataset: DatasetSpec, node: str,
            placement: ScopePlacement | None = None) -> CellOutcome:
        """Run one cell in a new process; its outcome, or :class:`CellProcessDied` with the
        monitor's words. ``placement``: the cell's own scope's (default: the host's)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            self._current = mine
        try:
            socket.send_fds(self.ctrl, [b"run"], [theirs.fileno()])
            theirs.close()
            conn = Connection(os.dup(mine.fileno()))
            with contextlib.closing(conn):
                send(conn, ("run", (spec, dataset, node, placement or self.placement)))
                while True:
                    try:
                        kind, value = recv(conn)
                    except (EOFError, OSError) as e:
                        raise CellProcessDied(f"the cell's monitor ended without a word ({type(e).__name__})") from None
                    if kind == "forking":
                        self.last_fork = value
                    elif kind == "ok":
                        return value
                    elif kind == "error":
                        raise ZygoteError(value)
                    else:
                        raise CellProcessDied(value)
        finally:
            with self._lock:
                self._current = None
            theirs.close()
            mine.close()

    def stop_cell(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the running cell (a timeout): its monitor kills it and answers once it is
        gone, which ends :meth:`run`. Returns True when no cell runs any more."""
        with self._lock:
            current = self._current
            if current is not None:
                with contextlib.suppress(OSError):
                    current.shutdown(socket.SHUT_WR)      # the monitor reads EOF: kill, reap, say so
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._current is None:
                    return True
            time.sleep(0.05)
        return False

    def pids(self) -> dict[str, int]:
        """This host's process and its zygote's."""
        return {"host": os.getpid(), "zygote": self.proc.pid}

    def close(self) -> None:
        """End the zygote (it exits when the control socket closes) and wait for it."""
        with contextlib.suppress(OSError):
            self.ctrl.close()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> CellHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
