"""`ray job submit --working-dir DIR -- hrvs-ray sweep ...` on a real two-node Ray cluster.

A token-protected head (GCS, dashboard and job server on 127.0.0.1) and a second `ray start`
node on this host, each with its own temp dir, ports and process group; stopped by process
id (never `ray stop`, which stops every Ray of this user on the machine). The working dir is
a copy of the source, as a user would submit it: Ray uploads it as a gcs:// package and puts
it first on the path of the job's driver and of every actor.

Before issue 18 the sweep ignored RAY_ADDRESS, started a private Ray inside the job, and that
Ray inherited the job's runtime env: every node probe failed downloading the package.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, tiny_sweep_dict
from test_ray_auth import _env, _free_port, _stop_group

# Opt-in (HRVS_TEST_RAY_JOBS=1): on this project's machines Ray's job server reached the
# agent at the host's non-loopback address (192.0.2.2) although every process was started
# on 127.0.0.1, and the run failed under load (connection refused, HTTP 405 on the package
# upload) after passing earlier. Traffic to a non-loopback address is not allowed in the
# sandboxes CI runs in, so CI must not depend on it until the test pins every Ray address
# to loopback.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("HRVS_TEST_RAY_JOBS") != "1",
                                 reason="Ray Jobs end to end is opt-in: set HRVS_TEST_RAY_JOBS=1 (see the comment)")]
RAY = Path(sys.executable).with_name("ray")


def _start(cmd: list[str], env: dict[str, str]) -> int:
    """`ray start` (which returns once its node is up) in a process group of its own, which
    the node's daemons stay in: the group id stops them later."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return proc.pid


@pytest.fixture(scope="module")
def cluster():
    """Head (no CPUs for the job driver to take from cells: 1) + worker node (1 CPU), token
    auth, dashboard/job server on loopback. Yields (dashboard URL, env, node ids, base)."""
    base = Path(tempfile.mkdtemp(prefix="hrvs-job-", dir="/tmp"))  # short: Ray's socket paths
    home, token = base / "home", base / "token"
    home.mkdir()
    token.write_text(secrets.token_hex(32))
    env = _env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    # Ray refuses a second node while this switch (loopback-only for one node) is 0; every
    # address here is loopback anyway (--node-ip-address, --dashboard-host)
    del env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # hrvs-ray, ray
    port, dash = _free_port(), _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]

    def ports() -> list[str]:  # two nodes on one host: every per-node port distinct
        return [f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
                f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}"]

    groups = []
    try:
        groups.append(_start([str(RAY), "start", "--head", f"--port={port}", *common, *ports(),
                              "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                              f"--ray-client-server-port={_free_port()}", f"--temp-dir={base / 'head'}"], env))
        groups.append(_start([str(RAY), "start", f"--address=127.0.0.1:{port}", *common, *ports(),
                              f"--temp-dir={base / 'worker'}"], env))
        yield f"http://127.0.0.1:{dash}", env, base
    finally:
        for pgid in reversed(groups):
            _stop_group(pgid, str(base))
        shutil.rmtree(base, ignore_errors=True)


def _working_dir(tmp_path: Path, version: str | None = None, input_sets: tuple[str, ...] = ("LR&FS", "HR&VS")) -> Path:
    """What a user submits: the source (hrvs_ray, sweeps, pyproject) and a tiny sweep."""
    wd = tmp_path / "wd"
    shutil.copytree(REPO / "hrvs_ray", wd / "hrvs_ray", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "sweeps", wd / "sweeps")
    shutil.copy(REPO / "pyproject.toml", wd)
    if version:  # another copy of the code than the driver's
        init = wd / "hrvs_ray" / "__init__.py"
        init.write_text(init.read_text().replace('__version__ = "0.1.0"', f'__version__ = "{version}"'))
    d = tiny_sweep_dict(tmp_path / "data")  # dataset and cache on a path every node sees
    d["input_sets"] = {k: v for k, v in d["input_sets"].items() if k in input_sets}
    (wd / "sweep.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    return wd


def _submit(cluster, wd: Path, *entrypoint: str) -> subprocess.CompletedProcess:
    url, env, _ = cluster
    return subprocess.run([str(RAY), "job", "submit", "--address", url, "--working-dir", str(wd), "--", *entrypoint],
                          capture_output=True, text=True, env=env, timeout=600)


def test_job_runs_cells_on_both_nodes_and_writes_where_out_says(cluster, tmp_path):
    wd = _working_dir(tmp_path)
    out = tmp_path / "shared" / "results"
    r = _submit(cluster, wd, "hrvs-ray", "sweep", "sweep.yaml", "--out", str(out), "--no-progress", "--no-report")
    log = r.stdout + r.stderr
    assert r.returncode == 0 and "succeeded" in log, log
    # the job's own cluster, as RAY_ADDRESS names it (Ray writes the host's address there)
    assert "Ray: joined the Ray cluster at " in log and "2 node(s) alive [RAY_ADDRESS=" in log, log
    assert "Failed to download runtime_env" not in log and "probe failed" not in log, log
    cells = pq.read_table(out / "cells.parquet").to_pandas()
    assert list(cells["status"]) == ["ok", "ok"], cells[["cell_id", "status", "error"]]
    assert cells["ray_node_id"].nunique() == 2, cells[["cell_id", "node", "ray_node_id"]]  # both nodes ran one
    nodes = pq.read_table(out / "nodes.parquet").to_pandas()
    assert set(cells["ray_node_id"]) == set(nodes["ray_node_id"])
    # the driver and the actors both imported the submitted copy; each cell says so
    assert (cells["driver_version"] == cells["hrvs_ray_version"]).all()
    assert cells["driver_revision"].equals(cells["git_revision"])
    assert not list(wd.glob("results*")) and not (wd / "reports").exists()


def test_default_results_folder_in_the_jobs_package_is_refused(cluster, tmp_path):
    wd = _working_dir(tmp_path)
    r = _submit(cluster, wd, "hrvs-ray", "sweep", "sweep.yaml", "--no-progress")
    log = r.stdout + r.stderr
    assert r.returncode != 0 and "pass --out on a shared path" in log and "_ray_pkg_" in log, log
    assert "Ray: " not in log   # refused before any Ray was joined or started


def test_address_local_in_a_job_starts_a_private_ray_without_the_jobs_runtime_env(cluster, tmp_path):
    wd = _working_dir(tmp_path, input_sets=("LR&FS",))
    out = tmp_path / "local"
    r = _submit(cluster, wd, "hrvs-ray", "sweep", "sweep.yaml", "--address", "local", "--out", str(out),
                "--no-progress", "--no-report")
    log = r.stdout + r.stderr
    assert r.returncode == 0, log
    assert "Ray: started a private Ray on this host" in log and "[--address local]" in log, log
    cells = pq.read_table(out / "cells.parquet").to_pandas()
    assert list(cells["status"]) == ["ok"], cells[["cell_id", "status", "error"]]


def test_driver_and_workers_on_different_code_is_refused(cluster, tmp_path):
    """The driver imports the repository (python -I ignores the job's PYTHONPATH), the
    actors the submitted copy, which says it is another version."""
    wd = _working_dir(tmp_path, version="0.1.0+other")
    out = tmp_path / "skew"
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from hrvs_ray.cli import main; sys.exit(main())"
    r = _submit(cluster, wd, sys.executable, "-I", "-c", code, "sweep", "sweep.yaml", "--out", str(out),
                "--no-progress", "--no-report")
    log = r.stdout + r.stderr
    assert r.returncode != 0, log
    assert "workers would run another hrvs-ray than this driver" in log and "version 0.1.0+other" in log, log
    assert not (out / "cells.parquet").exists()
