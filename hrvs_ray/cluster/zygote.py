"""Cell processes forked from a zygote: placed, torch imported, nothing run.

Every cell needs a fresh process: its kernel caches, heap and memory peak must be its own.
But importing torch and torchvision costs 6–8 s per process on a 2-core VM (torchvision
alone pulls in ``torch._dynamo``: 2.5 s), which was 330 s of the 16 min of
``quick-remedies.yaml``'s 48 cells. A zygote pays it once. It applies a scope's placement
and kernel-cache environment exactly as a cell's own process did (``actors.prepare_process``),
imports the training code, and then runs nothing: no thread pool, no kernel, no tensor.
Each cell is a fork of it, so it starts where a fresh process stood right after
``import torch``, in milliseconds: same CPU mask, NUMA policy and environment, empty caches.

One zygote per node, placement, kernel-cache setting and visible GPUs, serving one sweep:
the driver's token names the socket folder, and the driver stops its zygotes when the sweep
ends (an idle timeout stops those of a driver that died).

Per request the zygote forks a monitor, and the monitor forks the cell. The monitor says how
the cell's process ended when it ends without a result (an OOM kill, a crash), and kills the
cell when the one who asked goes away (a timeout, a killed actor). Pure stdlib: no Ray.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..errors import InternalError
from ..fsutil import atomic_write_text, private_dir
from ..node.topology_types import ScopePlacement

IDLE_EXIT_S = 600.0          # a zygote nobody asked for this long exits (its driver died)
START_TIMEOUT_S = 180.0      # importing torch on a loaded node can take a minute
POLL_S = 0.2


class ZygoteError(InternalError):
    """The zygote could not be started or reached."""


class CellProcessDied(InternalError):
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


def _cell(conn: Connection, setup: Any, placement: ScopePlacement, kernel_cache: str, request: tuple) -> None:
    """In the forked cell process: run the cell, send its outcome. Never returns."""
    _name("hrvs-cell")
    code = 1
    try:
        from .actors import CellRunner

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
    # must outlive the cell's actor that started it. Its cells die with their actors anyway
    # (the monitor), and the zygote with its raylet (``watch_pid``).
    if os.fork():
        os._exit(0)
    atomic_write_text(base.with_suffix(".pid"), str(os.getpid()))   # never read half-written
    from .actors import prepare_process

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
