"""The zygote: the process each cell is forked from, placed, torch imported, nothing run.

Every cell needs a process of its own: its kernel caches, heap and memory peak must be its
own. But importing torch and torchvision costs 6–8 s per process on a 2-core VM (torchvision
alone pulls in ``torch._dynamo``: 2.5 s), which was 330 s of the 16 min of
``quick-remedies.yaml``'s 48 cells. A zygote pays it once. It applies a scope's placement
and kernel-cache environment exactly as a cell's own process does
(``cell_process.prepare_process``), imports the training code, and then runs nothing: no
thread pool, no kernel, no tensor, and no thread besides its own when it forks (a test
counts ``/proc/self/task`` there). Each cell is a fork of it, so it starts where a fresh
process stood right after ``import torch``, in milliseconds: same CPU mask, NUMA policy and
environment, empty caches.

Its parent is the node's cell host (``zygote_client.CellHost``, a Ray actor in a sweep),
and the one way to reach it is the socketpair the host made and the zygote inherited (its
file descriptor is the argument): no socket path, no folder, no other user. The zygote
exits when the host closes its end or dies (the kernel closes it), so it lives exactly as
long as its host. In ``fresh`` mode it imports nothing and its cells exec a new interpreter.

Per request (a message with a socket attached) the zygote forks a monitor, and the monitor
forks the cell. The monitor reads the request, says how the cell's process ended when it
ends without a result (an OOM kill, a crash), and kills the cell when the one who asked goes
away (a timeout, a killed host); the cell dies with its monitor (PR_SET_PDEATHSIG). A
malformed request is answered with an error and the zygote serves on. Pure stdlib: no Ray.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from ..node.topology_types import ScopePlacement
from .wire import describe_end, die_with_parent, name_process, recv, send, thread_names

POLL_S = 0.2
MAX_MESSAGE = 1 << 16       # control messages are a word and at most one descriptor


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def same_placement(a: ScopePlacement, b: ScopePlacement) -> bool:
    """What the zygote fixed before importing torch, compared (not the scope's name)."""
    return (tuple(a.cpus), a.threads, tuple(a.numa_nodes)) == (tuple(b.cpus), b.threads, tuple(b.numa_nodes))


def _start_cell(conn: Connection, setup: Any, placement: ScopePlacement, kernel_cache: str,
                request: tuple) -> int:
    """Start the cell's process: a fork (``setup`` given), else exec of a fresh interpreter.
    Returns its pid."""
    monitor_pid = os.getpid()
    if setup is not None:
        pid = os.fork()
        if pid == 0:
            die_with_parent(monitor_pid)
            from .cell_process import serve_cell

            serve_cell(conn, placement, kernel_cache, request, setup)
        return pid
    # fresh: the request travels on a pipe; the connection is inherited across exec
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(wr)
        os.set_inheritable(rd, True)
        os.set_inheritable(conn.fileno(), True)
        os.execv(sys.executable, [sys.executable, "-m", "hrvs_ray.cluster.cell_process",
                                  str(conn.fileno()), str(rd), str(monitor_pid)])
    os.close(rd)
    with contextlib.suppress(BrokenPipeError), os.fdopen(wr, "wb") as f:
        pickle.dump((placement, kernel_cache, request), f, protocol=pickle.HIGHEST_PROTOCOL)
    return pid


def monitor(conn: Connection, setup: Any, placement: ScopePlacement, kernel_cache: str,
            fork_threads: list[str]) -> NoReturn:
    """In the monitor: read the request, start the cell, wait for it, kill it if the asker
    goes or shuts its end. ``fork_threads``: the zygote's threads just before it forked
    this monitor. Every message is sent while no cell could write beside it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)    # the zygote ignores it; we wait for our cell
    name_process("hrvs-monitor")
    try:
        kind, request = recv(conn)
        if kind != "run":
            raise ValueError(f"unknown request {kind!r}")
        spec, dataset, node, cell_placement = request
        if not same_placement(cell_placement, placement):
            raise ValueError(f"the cell's placement ({cell_placement.scope}: CPUs {list(cell_placement.cpus)}) "
                             f"is not its zygote's ({placement.scope}: CPUs {list(placement.cpus)})")
        send(conn, ("forking", {"zygote_threads": fork_threads, "monitor_threads": thread_names()}))
    except Exception as e:  # a malformed request: the asker gets the words, the zygote serves on
        with contextlib.suppress(Exception):
            send(conn, ("error", f"malformed request: {type(e).__name__}: {e}"))
        os._exit(0)
    # the cell runs with its own scope's placement (its name, core kinds, NUMA note), which
    # fixes the same CPUs, threads and NUMA nodes as its zygote's (checked above)
    pid = _start_cell(conn, setup, cell_placement, kernel_cache, (spec, dataset, node))
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if select.select([conn.fileno()], [], [], POLL_S)[0]:   # the asker never writes: it left or stops us
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            with contextlib.suppress(Exception):     # its host stopped it (a timeout), and it is gone
                send(conn, ("died", f"the cell's process (pid {pid}) was stopped by its host and is gone"))
            os._exit(0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        with contextlib.suppress(Exception):
            send(conn, ("died", f"the cell's process (pid {pid}) was {describe_end(status)}"))
    os._exit(0)


def _setup(ctrl: socket.socket) -> tuple[Any, ScopePlacement, str]:
    """Read what this zygote is for, then set up and import (fork mode) or nothing (fresh)."""
    placement, kernel_cache, process = pickle.loads(ctrl.recv(MAX_MESSAGE))
    if process == "fresh":
        return None, placement, kernel_cache
    from .cell_process import prepare_process

    setup = prepare_process(placement, kernel_cache)
    import torchvision  # noqa: F401 - the 3 s every cell would pay

    from ..train import cell  # noqa: F401 - the training code and what it imports
    return setup, placement, kernel_cache


def _answer(ctrl: socket.socket, fds: list[int], words: str) -> None:
    """A malformed control message: the error goes to the socket it brought, else back on
    the control channel."""
    if fds:
        with contextlib.closing(Connection(fds[0])) as c, contextlib.suppress(OSError):
            send(c, ("error", words))
        for fd in fds[1:]:
            os.close(fd)
    else:
        with contextlib.suppress(OSError):
            ctrl.send(pickle.dumps(("error", words)))


def serve(ctrl_fd: int) -> None:
    """Set up, say ready, then fork a monitor per request until the host closes its end."""
    name_process("hrvs-zygote")
    ctrl = socket.socket(fileno=ctrl_fd)
    if peer_uid(ctrl) != os.getuid():   # a socketpair from our own parent: a check, not a hope
        raise PermissionError("the zygote's control socket belongs to another user")
    try:
        setup, placement, kernel_cache = _setup(ctrl)
    except BaseException as e:  # noqa: BLE001 - the host reports why its zygote could not start
        ctrl.send(pickle.dumps(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}")))
        raise
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)    # monitors are reaped by the kernel
    ctrl.send(pickle.dumps(("ready", {"pid": os.getpid(), "threads": thread_names()})))
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctrl, MAX_MESSAGE, 4)
        except OSError:
            break
        if not msg:          # the host closed its end or died: the zygote goes with it
            break
        if msg != b"run" or len(fds) != 1:
            _answer(ctrl, fds, f"malformed request: {msg[:40]!r} with {len(fds)} socket(s)")
            continue
        threads = thread_names()       # just before fork: a test holds this to one
        if os.fork() == 0:
            ctrl.close()
            monitor(Connection(fds[0]), setup, placement, kernel_cache, threads)
        os.close(fds[0])


if __name__ == "__main__":
    serve(int(sys.argv[1]))
