"""Cell processes forked from a zygote: placed, torch imported, nothing run.

Every cell needs a fresh process: its kernel caches, heap and memory peak must be its own.
But importing torch and torchvision costs 6–8 s per process on a 2-core VM (torchvision
alone pulls in ``torch._dynamo``: 2.5 s), which was 330 s of the 16 min of
``quick-remedies.yaml``'s 48 cells. A zygote pays it once. It applies a scope's placement
and kernel-cache environment exactly as a cell's own process did (``cell_process.prepare_process``),
imports the training code, and then runs nothing: no thread pool, no kernel, no tensor.
Each cell is a fork of it, so it starts where a fresh process stood right after
``import torch``, in milliseconds: same CPU mask, NUMA policy and environment, empty caches.

One zygote per node, placement, kernel-cache setting and visible GPUs, serving one sweep:
the driver's token names the socket folder, and the driver stops its zygotes when the sweep
ends (an idle timeout stops those of a driver that died).

Per request the zygote forks a monitor, and the monitor forks the cell. The monitor says how
the cell's process ended when it ends without a result (an OOM kill, a crash), and kills the
cell when the one who asked goes away (a timeout, a killed task). Pure stdlib: no Ray.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text
from ..node.model import ScopePlacement
from .zygote_client import IDLE_EXIT_S, POLL_S, _alive, _recv, _send


def describe_end(status: int) -> str:
    """How a waited-for process ended, in words."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = " (the kernel's out-of-memory killer sends SIGKILL)" if sig == signal.SIGKILL else ""
        return f"killed by {name}{why}"
    return f"exited with code {os.WEXITSTATUS(status)} without a result"


def _name(name: str) -> None:
    """This process's name in ps/top (``comm``), so a person can tell zygote, monitor, cell."""
    from ..probes.syscalls import libc

    with contextlib.suppress(Exception):
        libc().prctl(15, name.encode()[:15], 0, 0, 0)    # PR_SET_NAME


def _cell(conn: Connection, setup: Any, placement: ScopePlacement, kernel_cache: str, request: tuple) -> None:
    """In the forked cell process: run the cell, send its outcome. Never returns."""
    _name("hrvs-cell")
    code = 1
    try:
        from .cell_process import CellRunner

        spec, dataset, node = request
        runner = CellRunner(placement, spec.counters.llc, kernel_cache, forked=setup)
        outcome = runner.run(spec, dataset, node)
        runner.close()
        _send(conn, ("ok", outcome))
        code = 0
    except BaseException as e:  # noqa: BLE001 - whatever it was, the asker gets the words
        with contextlib.suppress(Exception):
            _send(conn, ("died", f"the cell's process failed: {type(e).__name__}: {e}\n"
                                 f"{traceback.format_exc(limit=6)}"))
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _monitor(conn: Connection, setup: Any, placement: ScopePlacement, kernel_cache: str, request: tuple) -> None:
    """In the monitor: fork the cell, wait for it, kill it if the asker goes. Never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)    # the zygote ignores it; we wait for our cell
    _name("hrvs-monitor")
    pid = os.fork()
    if pid == 0:
        _cell(conn, setup, placement, kernel_cache, request)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if select.select([conn.fileno()], [], [], POLL_S)[0]:   # the asker never writes: it left
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os._exit(0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        with contextlib.suppress(Exception):
            _send(conn, ("died", f"the cell's process (pid {pid}) was {describe_end(status)}"))
    os._exit(0)


def serve(base: Path, watch_pid: int) -> None:
    """The zygote: set up, import, then fork a monitor per request until stopped, idle, or
    ``watch_pid`` (the node's raylet) is gone."""
    # Detach: Ray kills a worker's child processes when the worker exits, and the zygote
    # must outlive the cell's task that started it. Its cells die with their tasks anyway
    # (the monitor), and the zygote with its raylet (``watch_pid``).
    if os.fork():
        os._exit(0)
    atomic_write_text(base.with_suffix(".pid"), str(os.getpid()))   # never read half-written
    from .cell_process import prepare_process

    _name("hrvs-zygote")
    placement, kernel_cache = pickle.loads(base.with_suffix(".setup").read_bytes())
    setup = prepare_process(placement, kernel_cache)
    import torchvision  # noqa: F401 - the 3 s every cell would pay

    from ..train import cell  # noqa: F401 - the training code and what it imports

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)    # monitors are reaped by the kernel
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = base.with_suffix(".sock")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    srv.bind(str(path))
    srv.listen(64)
    last = time.monotonic()
    while time.monotonic() - last < IDLE_EXIT_S and _alive(watch_pid):
        if not select.select([srv], [], [], 2.0)[0]:
            continue
        conn = Connection(srv.accept()[0].detach())
        last = time.monotonic()
        try:
            kind, request = _recv(conn)
        except (EOFError, OSError):
            conn.close()
            continue
        if kind == "stop":
            conn.close()
            break
        if os.fork() == 0:
            srv.close()
            _monitor(conn, setup, placement, kernel_cache, request)
        conn.close()
    path.unlink(missing_ok=True)
    srv.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
