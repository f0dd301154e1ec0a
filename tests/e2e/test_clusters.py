"""Several Ray nodes on one machine (ray.cluster_utils.Cluster), labelled as clusters:
placement, resume after a killed driver, a killed cell process, a killed task worker, a node
removed mid-sweep."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hrvs_ray.store import read_results
from tests.helpers import cli_env, hrvs, tiny_sweep_dict

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "labels": {"cluster": "alpha"},
                                                      "include_dashboard": False})
    yield c
    c.shutdown()


def start_driver(sweep: Path, out: Path, address: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hrvs_ray.cli", "sweep", str(sweep), "--out", str(out),
                             "--address", address, "--no-progress", "--no-report"],
                            cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cell_processes(node=None) -> list[psutil.Process]:
    """Running cells: the processes forked from a zygote that are named "hrvs-cell",
    optionally only those of one simulated node (cell <- monitor <- zygote <- the cell
    host's Ray worker <- that node's raylet)."""
    raylet = node.all_processes["raylet"][0].process.pid if node is not None else None
    found = []
    for p in psutil.process_iter(["name"]):
        try:
            if p.info["name"] != "hrvs-cell":
                continue
            host = p.parent().parent().parent()
            if raylet is None or host.ppid() == raylet:
                found.append(p)
        except (psutil.Error, AttributeError):
            continue
    return found


def wait_for(pred, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_cells_land_on_their_clusters_nodes(ray_cluster, tmp_path, write_sweep):
    beta = ray_cluster.add_node(num_cpus=1, labels={"cluster": "beta"})
    ray_cluster.wait_for_nodes()
    sweep = write_sweep(tiny_sweep_dict(tmp_path, name="two"))
    p = start_driver(sweep, tmp_path / "r", ray_cluster.address, tmp_path)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    res = read_results(tmp_path / "r")
    cells = res.cells.to_pandas()
    assert sorted(cells["cluster"].unique()) == ["alpha", "beta"] and (cells["status"] == "ok").all()
    for _, c in cells.iterrows():
        assert (c["ray_node_id"] == beta.node_id) == (c["cluster"] == "beta")
    steps = res.steps.to_pandas()
    assert set(steps["cluster"]) == {"alpha", "beta"}
    assert set(res.nodes.column("cluster").to_pylist()) == {"alpha", "beta"}
    # the same configuration saw the same batches on both clusters
    fp = steps.groupby(["input_set", "run", "step"])["batch_fingerprint"].nunique()
    assert (fp == 1).all()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_driver_killed_mid_sweep_resumes_without_duplicates(ray_cluster, tmp_path, write_sweep, sig):
    sweep = write_sweep(tiny_sweep_dict(tmp_path, name="resume", training={"warmup_steps": 1, "steps": 2, "runs": 2}))
    out = tmp_path / "r"
    p = start_driver(sweep, out, ray_cluster.address, tmp_path)
    cells_file = out / "cells.parquet"
    wait_for(lambda: cells_file.is_file() and len(read_results(out).cells) >= 1, 300, "a finished cell")
    p.send_signal(sig)
    log, _ = p.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert p.returncode == 130 and "run the same command again to resume" in log, log
    before = read_results(out).cells.to_pandas()
    assert 1 <= len(before) < 6
    p = start_driver(sweep, out, ray_cluster.address, tmp_path)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    after = read_results(out).cells.to_pandas()
    assert len(after) == 6 and after["cell_id"].is_unique and (after["status"] == "ok").all()
    kept = after.set_index("cell_id").loc[before["cell_id"], "finished_at"]
    assert list(kept) == list(before["finished_at"])          # finished cells were not re-run
    assert f"{len(before)} already done" in log
    assert read_results(out).steps.num_rows == 6 * 3


def test_killed_cell_is_retried_on_another_node_of_its_cluster(ray_cluster, tmp_path, write_sweep):
    ray_cluster.add_node(num_cpus=1, labels={"cluster": "alpha"})
    ray_cluster.wait_for_nodes()
    sweep = write_sweep(tiny_sweep_dict(tmp_path, name="kill", training={"warmup_steps": 1, "steps": 8, "runs": 1}))
    p = start_driver(sweep, tmp_path / "r", ray_cluster.address, tmp_path)
    victim = wait_for(cell_processes, 300, "a running cell")[0]
    victim.kill()                    # as the kernel's OOM killer would: the cell, not its task
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    assert "retrying on another node" in log
    cells = read_results(tmp_path / "r").cells.to_pandas()
    assert (cells["status"] == "ok").all() and cells["attempts"].max() == 2


def test_killed_host_on_a_one_node_cluster_is_retried_there(ray_cluster, tmp_path, write_sweep):
    """The cell's host (its Ray actor) is killed mid-cell: the cell and the zygote end with
    it, and the cell is retried on the same node, its only one, by a new host."""
    sweep = write_sweep(tiny_sweep_dict(tmp_path, name="kill1", training={"warmup_steps": 1, "steps": 8, "runs": 1}))
    p = start_driver(sweep, tmp_path / "r", ray_cluster.address, tmp_path)
    cell = wait_for(cell_processes, 300, "a running cell")[0]
    zygote = cell.parent().parent()
    host = zygote.parent()
    assert "CellHost" in " ".join(host.cmdline())
    host.kill()
    # the monitor kills the cell when its host is gone; the zygote exits with its host
    wait_for(lambda: all(not q.is_running() or q.status() == psutil.STATUS_ZOMBIE for q in (cell, zygote)), 30,
             "the cell and its zygote to end")
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    assert "retrying on the same node" in log
    cells = read_results(tmp_path / "r").cells.to_pandas()
    assert (cells["status"] == "ok").all() and sorted(cells["attempts"]) == [1, 1, 2]


def test_node_removed_mid_sweep_does_not_hang_the_driver(ray_cluster, tmp_path, write_sweep):
    extra = ray_cluster.add_node(num_cpus=1, labels={"cluster": "alpha"})
    ray_cluster.wait_for_nodes()
    sweep = write_sweep(tiny_sweep_dict(tmp_path, name="lose", training={"warmup_steps": 1, "steps": 6, "runs": 2},
                                        execution={"cell_timeout_s": 600, "retries": 1}))
    p = start_driver(sweep, tmp_path / "r", ray_cluster.address, tmp_path)
    wait_for(lambda: cell_processes(extra), 300, "a cell running on the node to be removed")
    ray_cluster.remove_node(extra)
    removed_at = time.monotonic()
    log, _ = p.communicate(timeout=600)
    assert time.monotonic() - removed_at < 180, log          # far below the 600 s cell timeout
    cells = read_results(tmp_path / "r").cells.to_pandas()
    assert len(cells) == 6 and cells["cell_id"].is_unique, log
    # exactly the interrupted cell was retried, on the head node, and finished there; no
    # queued cell was sent to the lost node (each would have spent its retry on it)
    retried = cells[cells["attempts"] == 2]
    assert len(retried) == 1, log
    assert retried["status"].iloc[0] == "ok" and retried["ray_node_id"].iloc[0] != extra.unique_id, log
    assert (cells["status"] == "ok").all(), log
    assert "retrying on another node" in log and p.returncode == 0, log


def test_local_default_never_joins_a_stray_cluster(ray_cluster, tmp_path, write_sweep):
    sweep = write_sweep(tiny_sweep_dict(tmp_path, name="local", input_sets={
        "LR&FS": {"resize": "fixed", "size": [32, 32], "batch_size": 4}}))
    r = hrvs("sweep", str(sweep), "--out", str(tmp_path / "r"), "--no-progress", "--no-report", cwd=tmp_path,
             timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    cells = read_results(tmp_path / "r").cells.to_pandas()
    assert "alpha" not in set(cells["cluster"])     # a fresh loopback Ray, not the labelled one
