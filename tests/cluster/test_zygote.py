"""Cells run by a cell host (hrvs_ray.cluster.zygote_client.CellHost), for real: its zygote
imported torch, cells forked from it (or exec'd fresh) train, die, are stopped, and lose
their host; the zygote serves on after malformed requests and ends with its host."""
from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

import psutil
import pytest

from hrvs_ray.cluster import wire
from hrvs_ray.cluster.zygote_client import CellHost, CellProcessDied, ZygoteError
from hrvs_ray.config import load_sweep
from hrvs_ray.node.topology import read_topology, resolve_scope
from hrvs_ray.plan.cells import plan_cells
from tests.helpers import tiny_sweep_dict

pytestmark = pytest.mark.slow


def _cells(tmp_path, write_sweep, steps=3, **remedies):
    d = tiny_sweep_dict(tmp_path, training={"warmup_steps": 1, "steps": steps, "runs": 1, "seed": 3})
    d["input_sets"]["MR&VS"]["size"] = 40
    if remedies:
        d["remedies"] = remedies
    sweep = load_sweep(write_sweep(d, f"sweep-{steps}.yaml"))
    return sweep, [c for c in plan_cells(sweep, ["local"]) if c.input_set.name == "MR&VS"]


def _placement(scope: str = "node"):
    return resolve_scope(read_topology("/"), scope, allowed=os.sched_getaffinity(0))


def _named(name: str, parent: int | None = None) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "ppid"]):
        if p.info["name"] == name and (parent is None or p.info["ppid"] == parent):
            found.append(p)
    return found


def _wait(pred, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if got := pred():
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _in_thread(fn, *args):
    """Run ``fn`` in a thread; the returned dict gets its result or exception."""
    box: dict = {}

    def go():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            box["error"] = e
    t = threading.Thread(target=go, daemon=True)
    t.start()
    box["thread"] = t
    return box


def test_a_forked_cell_trains_exactly_like_a_fresh_process(tmp_path, write_sweep, monkeypatch):
    """Same batches, bitwise the same losses, same thread count: the fork starts where a
    fresh interpreter (``execution.process: fresh``) stands after ``import torch``, with
    nothing cached. The zygote holds no thread but its own when it forks."""
    monkeypatch.chdir(tmp_path)
    sweep, cells = _cells(tmp_path, write_sweep, batching=["pad", "accumulate"], micro_batch=1)
    runs = {}
    for process in ("fork", "fresh"):
        with CellHost(_placement(), "default", process) as host:
            for cell in cells:
                out = host.run(cell, sweep.dataset, "local")
                assert out.status == "ok", out.error
                assert out.facts.process == process and out.facts.placement_warning is None
                assert out.facts.pid not in (os.getpid(), host.proc.pid)
                runs[process, cell.cell_id] = out
            if process == "fork":
                assert host.last_fork["zygote_threads"] == ["hrvs-zygote"]     # /proc/self/task just before fork
                assert host.last_fork["monitor_threads"] == ["hrvs-monitor"]
                # the placement was applied in the zygote before torch was imported
                assert sorted(os.sched_getaffinity(host.proc.pid)) == sorted(_placement().cpus)
    assert len({o.facts.pid for o in runs.values()}) == 4                     # a process per cell
    for cell in cells:
        fork, fresh = runs["fork", cell.cell_id], runs["fresh", cell.cell_id]
        assert fork.steps.column("batch_fingerprint").to_pylist() == fresh.steps.column("batch_fingerprint").to_pylist()
        assert ([float(x).hex() for x in fork.steps.column("loss").to_pylist()]
                == [float(x).hex() for x in fresh.steps.column("loss").to_pylist()])
        assert fork.facts.threads == fresh.facts.threads


def test_killed_stopped_and_orphaned_cells_and_malformed_requests(tmp_path, write_sweep, monkeypatch):
    """One zygote through: a killed cell (reported with its signal), a cell whose monitor
    dies (the cell dies with it), a cell its host stops (gone when stop_cell returns),
    malformed requests (answered; the zygote serves on), then a cell that trains."""
    monkeypatch.chdir(tmp_path)
    sweep, long = _cells(tmp_path, write_sweep, steps=400)
    _, short = _cells(tmp_path, write_sweep, steps=1)
    with CellHost(_placement(), "default") as host:
        zygote = psutil.Process(host.proc.pid)

        def start_long():
            box = _in_thread(host.run, long[0], sweep.dataset, "local")
            cell = _wait(lambda: [p for p in _named("hrvs-cell") if p.parent().ppid() == zygote.pid], 120, "a cell")[0]
            return box, cell

        # the kernel's OOM killer: the cell, not its monitor
        box, cell = start_long()
        assert cell.parent().name() == "hrvs-monitor"
        cell.send_signal(signal.SIGKILL)
        box["thread"].join(60)
        assert isinstance(box.get("error"), CellProcessDied), box
        assert f"pid {cell.pid}" in str(box["error"]) and "killed by SIGKILL" in str(box["error"])

        # the monitor dies: PR_SET_PDEATHSIG takes the cell with it
        box, cell = start_long()
        cell.parent().kill()
        _wait(lambda: _gone(cell), 30, "the cell to die with its monitor")
        box["thread"].join(60)
        assert isinstance(box.get("error"), CellProcessDied), box

        # a timeout: the host stops the cell; when stop_cell returns, the process is gone
        box, cell = start_long()
        assert host.stop_cell() is True
        assert _gone(cell)
        box["thread"].join(60)
        assert "stopped by its host" in str(box.get("error")), box

        # malformed requests: on the control socket, and on a request's own socket
        host.ctrl.send(b"garbage")
        assert pickle.loads(host.ctrl.recv(1 << 16))[0] == "error"
        mine, theirs = socket.socketpair()
        socket.send_fds(host.ctrl, [b"run"], [theirs.fileno()])
        theirs.close()
        conn = Connection(mine.detach())
        conn.send_bytes(b"not a pickle")
        kind, words = wire.recv(conn)
        assert kind == "error" and "malformed request" in words
        conn.close()
        with pytest.raises(ZygoteError, match="is not its zygote's"):     # another scope's CPUs
            other = resolve_scope(read_topology("/"), "cores:1", allowed=os.sched_getaffinity(0))
            host.run(short[0], sweep.dataset, "local", placement=other)

        assert zygote.is_running() and host.run(short[0], sweep.dataset, "local").status == "ok"
        assert psutil.Process(host.proc.pid).pid == zygote.pid        # the same zygote served throughout
    zygote.wait(timeout=30)                                           # and ended with its host


HOST = r"""
import os, sys
from hrvs_ray.cluster.zygote_client import CellHost
from hrvs_ray.config import load_sweep
from hrvs_ray.node.topology import read_topology, resolve_scope
from hrvs_ray.plan.cells import plan_cells
sweep = load_sweep(sys.argv[1])
cell = [c for c in plan_cells(sweep, ["local"]) if c.input_set.name == "MR&VS"][0]
host = CellHost(resolve_scope(read_topology("/"), "node", allowed=os.sched_getaffinity(0)), "default")
host.run(cell, sweep.dataset, "local")
"""


def test_a_killed_host_takes_its_zygote_and_its_cell_with_it(tmp_path, write_sweep, monkeypatch):
    """A Ray actor killed (a node's worker gone): nothing it started lives on."""
    monkeypatch.chdir(tmp_path)
    sweep, _ = _cells(tmp_path, write_sweep, steps=400)
    host = subprocess.Popen([sys.executable, "-c", HOST, str(tmp_path / "sweep-400.yaml")], cwd=tmp_path)
    try:
        zygote = _wait(lambda: _named("hrvs-zygote", host.pid), 180, "the zygote")[0]
        cell = _wait(lambda: [p for p in _named("hrvs-cell") if p.parent().ppid() == zygote.pid], 180, "a cell")[0]
        host.kill()
        host.wait()
        _wait(lambda: _gone(cell) and _gone(zygote), 30, "the cell and the zygote to end")
    finally:
        host.kill()

