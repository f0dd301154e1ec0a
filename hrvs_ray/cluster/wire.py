"""What the cell host, its zygote, a monitor and a cell's process share: pickled messages
on a connection, how a process ended in words, process names and the parent-death signal.

Pure stdlib: no Ray, no torch. Every channel these messages travel on is a socketpair made
by the cell host and inherited by its own children (``zygote_client``): no path in a
shared folder, so no other user can connect, and both ends unpickle only what their own
parent or child sent.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import signal
from multiprocessing.connection import Connection
from typing import Any

PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1


def send(conn: Connection, obj: Any) -> None:
    conn.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def recv(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


def describe_end(status: int) -> str:
    """How a waited-for process ended, in words."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = " (the kernel's out-of-memory killer sends SIGKILL)" if sig == signal.SIGKILL else ""
        return f"killed by {name}{why}"
    return f"exited with code {os.WEXITSTATUS(status)} without a result"


def _prctl(option: int, arg: int | bytes) -> int:
    from ..probes.syscalls import libc

    return int(libc().prctl(option, arg, 0, 0, 0))


def name_process(name: str) -> None:
    """This process's name in ps/top (``comm``), so a person can tell zygote, monitor, cell."""
    with contextlib.suppress(Exception):
        _prctl(PR_SET_NAME, name.encode()[:15])


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent ends (PR_SET_PDEATHSIG). Call it first thing
    after fork, from a single-threaded parent: the signal follows the thread that forked,
    and a parent that died before the call is caught by the pid check."""
    if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError("prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:      # the parent was gone before the signal was armed
        os._exit(1)


def thread_names() -> list[str]:
    """The names of this process's threads now (``/proc/self/task``)."""
    names = []
    for tid in sorted(os.listdir("/proc/self/task")):
        with contextlib.suppress(OSError):
            names.append(open(f"/proc/self/task/{tid}/comm").read().strip())
    return names
