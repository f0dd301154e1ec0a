"""Cells forked from a zygote (hrvs_ray.cluster.zygote), for real: a zygote process that
imported torch, cells forked from it that train, die, or lose their asker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from hrvs_ray.cluster import zygote
from hrvs_ray.config import load_sweep
from hrvs_ray.node.topology import read_topology, resolve_scope
from hrvs_ray.plan.cells import plan_cells
from tests.helpers import tiny_sweep_dict

pytestmark = pytest.mark.slow

FRESH = r"""
import json, sys
from hrvs_ray.config import load_sweep
from hrvs_ray.cluster.actors import CellRunner
from hrvs_ray.plan.cells import plan_cells
from hrvs_ray.node.topology import read_topology, resolve_scope
sweep = load_sweep(sys.argv[1])
cell = [c for c in plan_cells(sweep, ["local"]) if c.cell_id == sys.argv[2]][0]
out = CellRunner(resolve_scope(read_topology("/"), "node"), "generic", cell.remedy.kernel_cache).run(
    cell, sweep.dataset, "local")
print(json.dumps({"status": out.status, "error": out.error, "threads": out.facts.threads,
                  "fp": out.steps.column("batch_fingerprint").to_pylist(),
                  "loss": [float(x).hex() for x in out.steps.column("loss").to_pylist()]}))
"""


@pytest.fixture
def token():
    t = uuid.uuid4().hex[:12]
    yield t
    zygote.stop_all(t)


def _cells(tmp_path, write_sweep, steps=3, **remedies):
    d = tiny_sweep_dict(tmp_path, training={"warmup_steps": 1, "steps": steps, "runs": 1, "seed": 3})
    d["input_sets"]["MR&VS"]["size"] = 40
    if remedies:
        d["remedies"] = remedies
    path = write_sweep(d)
    sweep = load_sweep(path)
    return path, sweep, [c for c in plan_cells(sweep, ["local"]) if c.input_set.name == "MR&VS"]


def _placement():
    return resolve_scope(read_topology("/"), "node", allowed=os.sched_getaffinity(0))


def _named(name: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name", "ppid"]) if p.info["name"] == name]


def _cmd(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:     # a zygote that has exited but was not reaped yet
        return []


def _wait(pred, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if got := pred():
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_forked_cell_trains_exactly_like_a_fresh_process(tmp_path, write_sweep, token, monkeypatch):
    """Same batches, bitwise the same losses, same thread count: the fork starts where a
    fresh process stands after ``import torch``, with nothing cached."""
    monkeypatch.chdir(tmp_path)
    path, sweep, cells = _cells(tmp_path, write_sweep, batching=["pad", "accumulate"], micro_batch=1)
    forked = []
    for cell in cells:
        conn = zygote.connect(token, "local", _placement(), cell.remedy.kernel_cache)
        out = zygote.run_forked(conn, (cell, sweep.dataset, "local"))
        conn.close()
        assert out.status == "ok", out.error
        assert out.facts.pid != os.getpid() and out.facts.placement_warning is None
        forked.append(out)
    assert len({o.facts.pid for o in forked}) == 2                     # a process per cell
    assert len(list(Path(zygote.zygote_dir(token)).glob("*.sock"))) == 1   # one zygote for both
    for cell, out in zip(cells, forked, strict=True):
        r = subprocess.run([sys.executable, "-c", FRESH, str(path), cell.cell_id], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
        assert r.returncode == 0, r.stderr
        fresh = json.loads(r.stdout.strip().splitlines()[-1])
        assert fresh["status"] == "ok", fresh["error"]
        assert out.steps.column("batch_fingerprint").to_pylist() == fresh["fp"]
        assert [float(x).hex() for x in out.steps.column("loss").to_pylist()] == fresh["loss"]
        assert out.facts.threads == fresh["threads"]


def test_a_killed_cell_is_reported_with_its_signal_and_the_zygote_serves_on(tmp_path, write_sweep, token,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, sweep, cells = _cells(tmp_path, write_sweep, steps=40)
    conn = zygote.connect(token, "local", _placement(), "default")
    zygote._send(conn, ("run", (cells[0], sweep.dataset, "local")))
    victim = _wait(lambda: _named("hrvs-cell"), 120, "the cell process")[0]
    assert victim.parent().name() == "hrvs-monitor" and victim.parent().parent().name() == "hrvs-zygote"
    victim.send_signal(signal.SIGKILL)
    kind, words = zygote._recv(conn)
    assert kind == "died" and f"pid {victim.pid}" in words and "killed by SIGKILL" in words
    conn.close()
    # the zygote itself lives on: the next cell is forked from it, not from a new zygote
    _, sweep2, short = _cells(tmp_path, write_sweep, steps=1)
    conn = zygote.connect(token, "local", _placement(), "default")
    assert zygote.run_forked(conn, (short[0], sweep2.dataset, "local")).status == "ok"
    assert len(_named("hrvs-zygote")) >= 1


def test_the_cell_dies_with_its_asker(tmp_path, write_sweep, token, monkeypatch):
    """A timed-out or killed actor closes its end: the monitor kills the cell at once."""
    monkeypatch.chdir(tmp_path)
    _, sweep, cells = _cells(tmp_path, write_sweep, steps=40)
    conn = zygote.connect(token, "local", _placement(), "default")
    zygote._send(conn, ("run", (cells[0], sweep.dataset, "local")))
    cell = _wait(lambda: _named("hrvs-cell"), 120, "the cell process")[0]
    conn.close()
    _wait(lambda: not cell.is_running() or cell.status() == psutil.STATUS_ZOMBIE, 10, "the cell to be killed")


def test_stop_all_ends_the_sweeps_zygotes_and_their_folder(tmp_path, token):
    conn = zygote.connect(token, "local", _placement(), "off")
    conn.close()
    d = zygote.zygote_dir(token)
    pid = next(p for p in _named("hrvs-zygote") if str(d) in " ".join(_cmd(p))).pid
    # the placement was applied before torch was imported (the kernel-cache variables are
    # checked by every forked cell: tests/train/test_kernel_cache.py)
    assert sorted(os.sched_getaffinity(pid)) == sorted(_placement().cpus)
    assert zygote.stop_all(token) == 1
    _wait(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 20,
          "the zygote to exit")
    assert not d.exists()


def test_a_zygote_exits_with_the_process_it_watches(tmp_path, token):
    """It watches its starter's parent (a Ray worker's is its raylet): a node that left
    leaves no zygote behind. Here the starter's parent is a shell that then sleeps."""
    start = ("import os, sys; from hrvs_ray.cluster import zygote; from hrvs_ray.node.topology import "
             "read_topology, resolve_scope; zygote.connect(sys.argv[1], 'n', resolve_scope(read_topology('/'), "
             "'node', allowed=os.sched_getaffinity(0)), 'default').close()")
    shell = subprocess.Popen(["bash", "-c", '"$0" -c "$1" "$2" && exec sleep 600', sys.executable, start, token])
    z = _wait(lambda: [p for p in _named("hrvs-zygote") if _cmd(p)[-1:] == [str(shell.pid)]], 180, "the zygote")[0]
    _wait(lambda: psutil.Process(shell.pid).name() == "sleep", 180, "the starter to finish")
    shell.kill()
    shell.wait()
    z.wait(timeout=20)


def test_folders_of_sweeps_whose_zygotes_are_gone_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    old, live, recent = (zygote.zygote_dir(t) for t in ("old", "live", "recent"))
    (old / "k.pid").write_text("999999999")          # no such process
    (live / "k.pid").write_text(str(os.getpid()))
    past = time.time() - 3 * zygote.IDLE_EXIT_S
    for d in (old, live):
        os.utime(d, (past, past))
    zygote.zygote_dir("new")
    assert not old.exists() and live.exists() and recent.exists()


def test_a_socket_folder_others_could_write_is_refused_with_its_path(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    base = tmp_path / f"hrvs-zygotes-{os.getuid()}"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    with pytest.raises(zygote.ZygoteError, match=str(base)):
        zygote.zygote_dir("t")
