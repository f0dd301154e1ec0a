"""The SLURM launcher for real: a one-node SLURM (Debian's slurm-wlm) started here with a
generated configuration runs apptainer/slurm/hrvs-ray.sbatch without a container; it must
bring up Ray, run sweeps/smoke.yaml, record the job in the results and tear Ray down."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import REPO, free_port

LAUNCHER = REPO / "apptainer" / "slurm" / "hrvs-ray.sbatch"
PLUGIN_DIRS = [Path("/usr/lib/x86_64-linux-gnu/slurm-wlm"), Path("/usr/lib/aarch64-linux-gnu/slurm-wlm"),
               Path("/usr/lib64/slurm"), Path("/usr/lib/slurm")]

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    for tool in ("slurmctld", "slurmd", "sbatch", "scontrol", "sinfo"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return "slurm-wlm not installed: apt-get install slurm-wlm (apptainer/ci-system-deps.sh does it)"
    if os.geteuid() != 0:
        return "the test SLURM runs its daemons as root"
    if not any((d / "auth_none.so").exists() for d in PLUGIN_DIRS):
        return "this slurm-wlm has no auth/none plugin (needs a munge setup, not written for the test)"
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@pytest.fixture
def slurm(tmp_path):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    d = tmp_path / "slurm"
    for sub in ("state", "spool"):
        (d / sub).mkdir(parents=True)
    mem_mb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal:"))) // 1024
    cpus = os.cpu_count() or 1
    conf = d / "slurm.conf"
    conf.write_text(f"""\
ClusterName=hrvstest
# A fresh id range per run: job ids name Ray temp dirs and ports on this shared host.
FirstJobId={random.randint(10_000, 9_000_000)}
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/none
CredType=cred/none
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
# No cgroups here (a container, maybe no delegation): track processes by parentage.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=localhost CPUs={cpus} RealMemory={int(mem_mb * 0.9)} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
    (d / "cgroup.conf").write_text("# unused: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [subprocess.Popen([_tool("slurmctld"), "-D", "-f", str(conf)], env=env,
                                stdout=open(d / "slurmctld.out", "w"), stderr=subprocess.STDOUT)]
    daemons.append(subprocess.Popen([_tool("slurmd"), "-D", "-f", str(conf), "-N", "localhost"], env=env,
                                    stdout=open(d / "slurmd.out", "w"), stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 60
        while True:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip() == "idle":
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in daemons):
                logs = "\n".join((d / f).read_text() for f in ("slurmctld.log", "slurmd.log", "slurmctld.out",
                                                               "slurmd.out") if (d / f).exists())
                pytest.fail(f"test SLURM did not come up: {out.stdout}{out.stderr}\n{logs[-4000:]}")
            time.sleep(1)
        yield env
    finally:
        for p in reversed(daemons):
            p.terminate()
        for p in daemons:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path("/proc", pid, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd[:200]}")
    return found


def test_launcher_runs_smoke_sweep_without_container(slurm, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out_dir = work / "results" / "smoke"
    env = {**slurm, "HRVS_RESULTS": str(work), "HRVS_CLUSTER": "slurmtest",
           "HRVS_VENV": str(Path(sys.executable).parent.parent), "HRVS_WAIT_S": "180"}
    env.pop("APPTAINER_IMAGE", None)
    for var in ("SLURM_JOB_ID", "SLURM_JOBID", "RAY_ADDRESS", "RAY_AUTH_TOKEN"):
        env.pop(var, None)
    env["OMP_NUM_THREADS"] = "1"  # a leaking host setting the launcher must drop
    log = work / "job.out"
    sub = subprocess.run(["sbatch", "--wait", "--parsable", "--nodes=1", "--time=00:20:00", f"--output={log}",
                          str(LAUNCHER), str(REPO / "sweeps" / "smoke.yaml"), "--out", str(out_dir), "--no-report"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    job_log = log.read_text() if log.exists() else "(no job log)"
    assert sub.returncode == 0, f"sbatch: {sub.stdout}{sub.stderr}\n--- job log ---\n{job_log[-6000:]}"
    job_id = sub.stdout.strip().split(";")[0]

    cells = pq.read_table(out_dir / "cells.parquet").to_pylist()
    assert cells and all(c["status"] == "ok" for c in cells), job_log[-4000:]
    assert {c["scheduler_job_id"] for c in cells} == {job_id}
    assert {c["cluster"] for c in cells} == {"slurmtest"}
    assert all(c["in_container"] is False for c in cells)

    assert "1/1 nodes joined with label cluster=slurmtest" in job_log
    # Torn down: no process of this job's Ray (its temp dir names the job) is left, and
    # the job-private token is gone.
    tmp_dir = f"/tmp/hrvs-{job_id}"
    deadline = time.monotonic() + 30
    while _processes_mentioning(tmp_dir) and time.monotonic() < deadline:
        time.sleep(1)
    assert _processes_mentioning(tmp_dir) == []
    assert not Path(tmp_dir).exists()
    assert not (work / ".hrvs-ray-jobs" / job_id / "ray_auth_token").exists()
