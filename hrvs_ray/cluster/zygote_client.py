"""The client side of the node's zygote (``zygote``): start it once per node, placement and
kernel-cache setting, connect to it, ask it for a cell, stop it. Pure stdlib: no Ray."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..fsutil import private_dir
from ..node.model import ScopePlacement

IDLE_EXIT_S = 600.0          # a zygote nobody asked for this long exits (its driver died)
START_TIMEOUT_S = 180.0      # importing torch on a loaded node can take a minute
POLL_S = 0.2


class ZygoteError(RuntimeError):
    """The zygote could not be started or reached."""


class CellProcessDied(RuntimeError):
    """The cell's forked process ended without a result: the monitor's words say how."""


def zygote_dir(token: str) -> Path:
    """This sweep's socket folder: private to the user (sockets take pickles)."""
    parent = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    base = private_dir(parent, "hrvs-zygotes")
    if base is None:
        raise ZygoteError(f"{parent}/hrvs-zygotes-{os.getuid()} cannot be made, or is not private to this user "
                          f"(it must be theirs alone, mode 700)")
    d = base / token
    if not d.exists():
        _prune(base)
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def _prune(base: Path) -> None:
    """Remove folders of sweeps whose zygotes are all gone (a driver killed with SIGKILL
    never stopped them; they exited when idle): older than the idle timeout, no live pid."""
    now = time.time()
    for d in base.iterdir():
        with contextlib.suppress(OSError, ValueError):
            if now - d.stat().st_mtime < 2 * IDLE_EXIT_S:
                continue
            if any(pid is None or _alive(pid) for pid in map(_read_pid, d.glob("*.pid"))):
                continue
            for f in d.iterdir():
                f.unlink()
            d.rmdir()


def zygote_key(node_id: str, placement: ScopePlacement, kernel_cache: str) -> str:
    """The node, everything its zygote fixed before importing torch, and the interpreter."""
    parts = (node_id, placement.cpus, placement.threads, placement.numa_nodes, kernel_cache,
             os.environ.get("CUDA_VISIBLE_DEVICES"), sys.executable)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _send(conn: Connection, obj: Any) -> None:
    conn.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _recv(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


def _connect(path: Path) -> Connection | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError:
        s.close()
        return None
    return Connection(s.detach())


def connect(token: str, node_id: str, placement: ScopePlacement, kernel_cache: str) -> Connection:
    """A connection to this node's zygote for (placement, kernel cache), started if needed.
    A lock file keeps two cells that arrive together from starting two zygotes. The zygote
    watches this process's parent (a Ray worker's is its node's raylet) and exits with it."""
    d = zygote_dir(token)
    key = zygote_key(node_id, placement, kernel_cache)
    sock, log = d / f"{key}.sock", d / f"{key}.log"
    with open(d / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = _connect(sock)
        if conn is not None:
            return conn
        (d / f"{key}.setup").write_bytes(pickle.dumps((placement, kernel_cache)))
        (d / f"{key}.pid").unlink(missing_ok=True)     # a dead zygote's, if one died
        # the code this process imports, wherever it came from (Ray adds the job's folders to
        # a worker's sys.path, not to PYTHONPATH)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "hrvs_ray.cluster.zygote", str(d / key),
                                     str(os.getppid())], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        proc.wait()      # it forks the zygote and exits at once: see serve()
        pid_file, deadline = d / f"{key}.pid", time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            conn = _connect(sock)
            if conn is not None:
                return conn
            pid = _read_pid(pid_file)
            if proc.returncode or (pid is not None and not _alive(pid)):
                raise ZygoteError(f"the zygote for scope {placement.scope} exited: "
                                  f"{log.read_text(errors='replace')[-1500:]}")
            time.sleep(POLL_S)
        raise ZygoteError(f"the zygote for scope {placement.scope} did not start within {START_TIMEOUT_S:.0f} s")


def run_forked(conn: Connection, request: tuple) -> Any:
    """Ask the zygote for a cell: ``request`` is ``CellRunner.run``'s arguments. Returns the
    cell's outcome, or raises :class:`CellProcessDied` with the monitor's words."""
    _send(conn, ("run", request))
    try:
        kind, value = _recv(conn)
    except (EOFError, OSError) as e:
        raise CellProcessDied(f"the cell's monitor ended without a word ({type(e).__name__})") from None
    if kind == "ok":
        return value
    raise CellProcessDied(value)


def stop_all(token: str) -> int:
    """Stop every zygote of this sweep on this node; returns how many answered."""
    d = zygote_dir(token)
    stopped = 0
    for sock in d.glob("*.sock"):
        conn = _connect(sock)
        if conn is None:
            continue
        with contextlib.closing(conn):
            _send(conn, ("stop", None))
            with contextlib.suppress(EOFError, OSError):
                conn.recv_bytes()       # closed when the zygote is gone
            stopped += 1
    for f in d.iterdir():
        with contextlib.suppress(OSError):
            f.unlink()
    with contextlib.suppress(OSError):
        d.rmdir()
    return stopped


def _read_pid(path: Path) -> int | None:
    """The zygote's pid, once it has written it (None before)."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
