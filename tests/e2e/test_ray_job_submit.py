"""`ray job submit --working-dir DIR -- hrvs-ray sweep ...` on a real two-node Ray cluster.

A token-protected head and a second `ray start` node on this host, each with its own temp
dir and process group; stopped by process id (never `ray stop`, which stops every Ray of this
user on the machine). The working dir is a copy of the source, as a user would submit it: Ray
uploads it as a gcs:// package and puts it first on the path of the job's driver and of every
actor.

Loopback only, and nothing shared with another Ray on the machine:
- Node addresses 127.0.0.2 and 127.0.0.3. `ray start --node-ip-address=127.0.0.1` (or
  localhost) is silently replaced by the host's routable address (Ray's
  services.resolve_ip_for_localhost) unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and with that
  switch at 0 Ray refuses a second node. Other 127/8 addresses are loopback too, and Ray takes
  them as given: its GCS address, every agent and every node's address stay on loopback.
- Ports 0 wherever Ray takes it: each component binds a port the kernel picks and publishes it.
  Ports picked beforehand and passed in could be taken by another Ray on the machine in the
  seconds before `ray start` binds them.

Before issue 18 the sweep ignored RAY_ADDRESS, started a private Ray inside the job, and that
Ray inherited the job's runtime env: every node probe failed downloading the package.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from tests.helpers import REPO, free_port, listening_sockets, process_group, ray_env, stop_group, tiny_sweep_dict

pytestmark = pytest.mark.slow
RAY = Path(sys.executable).with_name("ray")
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def _start(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """`ray start` (which returns once its node is up) in a process group of its own, which
    the node's daemons stay in: the group id stops them later. Returns (group id, output)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return proc.pid, out


def _printed(pattern: str, out: str) -> str:
    """What `ray start --head` printed for the user to copy (the ports Ray picked)."""
    m = re.search(pattern, out)
    assert m, f"`ray start` printed no {pattern!r}:\n{out}"
    return m.group(1)


@pytest.fixture(scope="module")
def cluster():
    """Head (1 CPU) + worker node (1 CPU), token auth, dashboard/job server on 127.0.0.1.
    Yields (dashboard URL, env, base, process group ids)."""
    base = Path(tempfile.mkdtemp(prefix="hrvs-job-", dir="/tmp"))  # short: Ray's socket paths
    home, token = base / "home", base / "token"
    home.mkdir()
    token.write_text(secrets.token_hex(32))
    env = ray_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    del env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]  # at 0 Ray refuses the second node (see above)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # hrvs-ray, ray
    # the head's Prometheus endpoints (autoscaler, dashboard) have fixed default ports
    env.update(AUTOSCALER_METRIC_PORT="0", DASHBOARD_METRIC_PORT="0")
    ports = ["--dashboard-agent-listen-port=0", "--dashboard-agent-grpc-port=0", "--runtime-env-agent-port=0",
             "--metrics-export-port=0", "--min-worker-port=0", "--max-worker-port=0"]
    common = ["--num-cpus=1", "--disable-usage-stats", *ports]
    groups: list[int] = []
    try:
        pgid, out = _start([str(RAY), "start", "--head", f"--node-ip-address={HEAD_IP}", "--port=0", *common,
                            "--include-dashboard=true", "--dashboard-host=127.0.0.1", "--dashboard-port=0",
                            # 1024..65535 only, no 0: one port picked here, free on every address
                            f"--ray-client-server-port={free_port()}", f"--temp-dir={base / 'head'}"], env)
        groups.append(pgid)
        gcs = _printed(r"ray start --address='([^']+)'", out)
        url = _printed(r"RAY_API_SERVER_ADDRESS='([^']+)'", out)
        assert gcs.startswith(f"{HEAD_IP}:") and url.startswith("http://127.0.0.1:"), out
        groups.append(_start([str(RAY), "start", f"--address={gcs}", f"--node-ip-address={WORKER_IP}", *common,
                              f"--temp-dir={base / 'worker'}"], env)[0])
        yield url, env, base, groups
    finally:
        for pgid in reversed(groups):
            stop_group(pgid, str(base))
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
    url, env, _, _ = cluster
    return subprocess.run([str(RAY), "job", "submit", "--address", url, "--working-dir", str(wd), "--", *entrypoint],
                          capture_output=True, text=True, env=env, timeout=600)


def test_job_runs_cells_on_both_nodes_and_writes_where_out_says(cluster, tmp_path):
    wd = _working_dir(tmp_path)
    out = tmp_path / "shared" / "results"
    r = _submit(cluster, wd, "hrvs-ray", "sweep", "sweep.yaml", "--out", str(out), "--no-progress", "--no-report")
    log = r.stdout + r.stderr
    assert r.returncode == 0 and "succeeded" in log, log
    # the job's own cluster, as RAY_ADDRESS names it: the head's loopback address
    assert f"Ray: joined the Ray cluster at {HEAD_IP}:" in log, log
    assert f"2 node(s) alive [RAY_ADDRESS={HEAD_IP}:" in log, log
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


def _loopback(ip: str) -> bool:
    a = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(a, "ipv4_mapped", None) or a).is_loopback


def test_the_cluster_talks_over_loopback_only(cluster):
    """After the jobs above: no process of either node (GCS, raylets, dashboard, agents, the
    jobs' workers) listens on or is connected to an address off loopback. Listening on every
    interface (0.0.0.0, as Ray's GCS and raylet do for a node address other than 127.0.0.1) is
    no traffic; a socket bound to or connected to the host's own address would be."""
    _, _, _, groups = cluster
    procs = [p for p in psutil.process_iter(["name", "cmdline"]) if process_group(p) in groups]
    assert len(procs) >= 8, [p.info["name"] for p in procs]  # 2 x (raylet, agents, ...) + GCS, dashboard
    off = []
    for p in procs:
        for c in listening_sockets(p):
            if not _loopback(c.laddr.ip) and not ipaddress.ip_address(c.laddr.ip.split("%")[0]).is_unspecified:
                off.append((p.info["name"], "listens on", c.laddr))
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        off += [(p.info["name"], "connected to", c.raddr) for c in conns if c.raddr and not _loopback(c.raddr.ip)]
    assert not off, off
