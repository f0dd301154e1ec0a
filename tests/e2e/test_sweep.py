"""Real end-to-end runs: local Ray, real training on tiny synthetic data, real parquet."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from hrvs_ray.store import read_results
from tests.helpers import cli_env, hrvs, tiny_sweep_dict

pytestmark = pytest.mark.slow


def hrvs_watched(*args: str, cwd: Path, env: dict[str, str], timeout: float = 420
                 ) -> tuple[subprocess.CompletedProcess, set[tuple[int, float]]]:
    """``hrvs`` while every process below it is noted (pid, start time), as often as the
    machine allows: Ray's, the cell hosts', zygotes, monitors, cells."""
    import psutil

    p = subprocess.Popen([sys.executable, "-m", "hrvs_ray.cli", *args], cwd=cwd, env=cli_env(env), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: set[tuple[int, float]] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                for c in psutil.Process(p.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        seen.add((c.pid, c.create_time()))
            except psutil.Error:
                return
            time.sleep(0.1)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        stop.set()
        t.join()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), seen


def _still_running(seen: set[tuple[int, float]]) -> list[str]:
    import psutil

    left = []
    for pid, started in seen:
        with contextlib.suppress(psutil.Error):
            q = psutil.Process(pid)
            if q.create_time() == started and q.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{pid} {q.name()} {' '.join(q.cmdline())[:120]}")
    return left


def test_sweep_runs_every_cell_writes_parquet_and_resumes(tmp_path, write_sweep):
    """Also: a symlink planted where a zygote folder used to live leads nowhere (the cell
    hosts use none), and no process the sweep started outlives it."""
    # cores:4096 exists on no machine: its cells must be skipped with the reason, not failed
    sweep = write_sweep(tiny_sweep_dict(tmp_path, name="e2e", scopes=["cores:4096", "node"]))
    out = tmp_path / "results"
    # a short TMPDIR (Ray puts its sockets there) holding the link, to a private folder of
    # this user with an old file in a subfolder: what the old pruning deleted
    tmp = Path(tempfile.mkdtemp(prefix="hz", dir="/tmp"))
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    victim.chmod(0o700)
    old = victim / "sub" / "old.txt"
    old.write_text("keep me")
    os.utime(old, (time.time() - 86400, time.time() - 86400))
    os.utime(victim / "sub", (time.time() - 86400, time.time() - 86400))
    for name in ("hrvs-zygotes", "hrvs-ray-flops", "hrvs-ray-digests"):
        (tmp / f"{name}-{os.getuid()}").symlink_to(victim)
    env = {**os.environ, "TMPDIR": str(tmp), "XDG_RUNTIME_DIR": str(tmp)}
    try:
        r, seen = hrvs_watched("sweep", str(sweep), "--out", str(out), "--no-progress", cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert old.read_text() == "keep me" and sorted(p.name for p in victim.rglob("*")) == ["old.txt", "sub"]
        assert any(True for _ in seen), "no process below the sweep was seen"
        deadline = time.monotonic() + 60           # Ray's own processes take a moment to go
        while _still_running(seen) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _still_running(seen)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert "s/MP" in r.stdout and "s/inf-MP" in r.stdout
    res = read_results(out)
    # the driver's one plan, kept for the report: one view per input set (one batching policy)
    assert res.plan is not None and sorted(v["input_set"] for v in res.plan["views"]) == ["HR&VS", "LR&FS", "MR&VS"]
    cells = res.cells.to_pandas()
    skipped = cells[cells["status"] == "skipped"]
    assert len(skipped) == 3 and skipped["error"].str.contains("cores:4096 needs 4096 physical cores").all()
    cells = cells[cells["status"] == "ok"]
    assert len(cells) == 3
    assert (cells["process"] == "fork").all()
    steps = res.steps.to_pandas()
    assert len(steps) == 3 * 3
    assert steps.groupby("cell_id")["warmup"].sum().eq(1).all()
    assert (steps["seconds"] > 0).all() and (steps["data_seconds"] > 0).all()
    assert (steps["peak_rss_bytes"] >= steps["rss_start_bytes"]).all()
    assert (steps["peak_rss_scope"] == "step").all()
    assert steps["batch_fingerprint"].str.len().eq(32).all()
    assert (steps["total_px"] == steps["informative_px"] + steps["padding_px"]).all()
    assert steps.loc[steps["input_set"] == "LR&FS", "padding_px"].eq(0).all()
    assert (steps["flops"] > 0).all()
    affinity = sorted(os.sched_getaffinity(0))
    for _, c in cells.iterrows():
        assert sorted(c["cpus"]) == affinity and c["threads"] == len(affinity)
    assert res.nodes.num_rows == 1
    assert cells["images_decoded"].sum() > 0
    html = (tmp_path / "reports" / "e2e.html").read_text()
    assert "LR&amp;FS" in html and "HR&amp;VS" in html and "Table 1" in html and "<script" not in html
    assert "cores:4096 needs 4096 physical cores" in html      # skipped cells listed with reasons
    csv = tmp_path / "ds" / "MAMe_dataset.csv"
    mtime = csv.stat().st_mtime_ns

    again = hrvs("sweep", str(sweep), "--out", str(out), "--no-progress", "--no-report", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "6 cells: 3 already done, 0 ran ok, 0 failed, 3 skipped" in again.stdout
    assert csv.stat().st_mtime_ns == mtime            # dataset generated once
    assert read_results(out).steps.num_rows == 9      # no duplicates


def test_execution_process_fresh_runs_each_cell_in_a_new_interpreter(tmp_path, write_sweep):
    d = tiny_sweep_dict(tmp_path, name="fresh", input_sets={"LR&FS": {"resize": "fixed", "size": [32, 32],
                                                                      "batch_size": 4}},
                        execution={"cell_timeout_s": 300, "retries": 0, "process": "fresh"})
    r = hrvs("sweep", str(write_sweep(d)), "--out", str(tmp_path / "r"), "--no-progress", "--no-report",
             cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    cells = read_results(tmp_path / "r").cells.to_pandas()
    assert list(cells["status"]) == ["ok"] and list(cells["process"]) == ["fresh"]
    # torch came after the placement: nothing was imported before the cell's own set-up
    assert cells["placement_warning"].isna().all(), cells["placement_warning"].tolist()


def test_missing_mame_dataset_says_how_to_get_it(tmp_path, write_sweep):
    d = tiny_sweep_dict(tmp_path)
    d["dataset"] = {"kind": "mame", "path": str(tmp_path / "nowhere")}
    r = hrvs("sweep", str(write_sweep(d)), "--out", str(tmp_path / "r"), cwd=tmp_path, timeout=60)
    assert r.returncode == 2
    assert "MAMe" in r.stderr and "synth" in r.stderr and str(tmp_path / "nowhere") in r.stderr


@pytest.mark.parametrize("input_set,remedies", [
    ("MR&VS", None), ("HR&VS", None),
    ("MR&VS", {"batching": "bucket", "precision": "bfloat16", "window": 2}),
    ("MR&VS", {"batching": "accumulate", "precision": "bfloat16", "memory_format": "channels_last",
               "checkpointing": "stages"}),
])
def test_same_cell_twice_gives_identical_batches_and_bitwise_losses(tmp_path, write_sweep, input_set, remedies,
                                                                     monkeypatch):
    """Twice, each time in a fresh fork of the zygote as a sweep runs it (a fork trains
    bitwise like a fresh process: test_zygote.py)."""
    from hrvs_ray.cluster.zygote_client import CellHost
    from hrvs_ray.config import load_sweep
    from hrvs_ray.node.topology import read_topology, resolve_scope
    from hrvs_ray.plan.cells import plan_cells

    monkeypatch.chdir(tmp_path)
    d = tiny_sweep_dict(tmp_path, training={"warmup_steps": 1, "steps": 3, "runs": 1, "seed": 3})
    if remedies:
        d["remedies"] = remedies
        # one image per pass must leave BatchNorm more than one value: shorter side > 32 px
        d["input_sets"]["MR&VS"]["size"] = 40
    sweep = load_sweep(write_sweep(d))
    cell = [c for c in plan_cells(sweep, ["local"]) if c.input_set.name == input_set][0]
    placement = resolve_scope(read_topology("/"), "node", allowed=os.sched_getaffinity(0))
    runs = []
    with CellHost(placement, cell.remedy.kernel_cache) as host:
        for _ in range(2):
            out = host.run(cell, sweep.dataset, "local")
            assert out.status == "ok", out.error
            t = out.steps
            runs.append({"pid": out.facts.pid, "threads": out.facts.threads, "remedy": t.column("remedy")[0].as_py(),
                         "fp": t.column("batch_fingerprint").to_pylist(),
                         "loss": [float(x).hex() for x in t.column("loss").to_pylist()]})
    a, b = runs
    assert a["pid"] != b["pid"]
    assert len(a["fp"]) == 4 and len(set(a["fp"])) == 4
    assert a["fp"] == b["fp"]
    assert a["loss"] == b["loss"]          # hex of the float64: bitwise equality
    assert a["threads"] == b["threads"]
    assert (a["remedy"] == "pad+fp32+nchw") == (remedies is None)


def test_corrupt_image_fails_its_cells_naming_the_file_and_the_sweep_goes_on(tmp_path, write_sweep):
    d = tiny_sweep_dict(tmp_path, name="corrupt", input_sets={
        "HR&VS": {"resize": "none", "batch_size": 2}, "MR&VS": {"resize": "shorter_side", "size": 32, "batch_size": 2}})
    sweep = write_sweep(d)
    r = hrvs("data", "synth", "--out", str(tmp_path / "ds"), "--count", "24", "--scale", "0.02", "--seed", "1",
             "--quality", "85", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    victims = sorted((tmp_path / "ds" / "data").glob("*.jpg"))
    for jpg in victims:     # every image's tail cut: headers pass the pre-flight, decoding fails in the cell
        data = jpg.read_bytes()
        jpg.write_bytes(data[: int(len(data) * 0.6)])
    r = hrvs("sweep", str(sweep), "--out", str(tmp_path / "r"), "--no-progress", "--no-report", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    cells = read_results(tmp_path / "r").cells.to_pandas()
    assert len(cells) == 2 and (cells["status"] == "failed").all()
    for err in cells["error"]:
        assert "DatasetError" in err and any(v.name in err for v in victims)
    assert "FAILED" in r.stdout


def test_a_cell_over_its_timeout_is_recorded_failed_and_its_process_is_gone(tmp_path, write_sweep):
    """The driver asks the cell's host to stop it; the monitor kills the cell."""
    import psutil

    d = tiny_sweep_dict(tmp_path, name="slow", input_sets={"HR&VS": {"resize": "none", "batch_size": 2}},
                        training={"warmup_steps": 1, "steps": 5000, "runs": 1, "seed": 7},
                        execution={"cell_timeout_s": 30, "retries": 0})
    r = hrvs("sweep", str(write_sweep(d)), "--out", str(tmp_path / "r"), "--no-progress", "--no-report",
             cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    cells = read_results(tmp_path / "r").cells.to_pandas()
    assert len(cells) == 1 and cells["status"].iloc[0] == "failed"
    assert cells["error"].iloc[0].startswith("timeout: cell ran over 30 s"), cells["error"].iloc[0]
    # no cell process outlives its sweep (its monitor killed it when the host asked)
    left = [p for p in psutil.process_iter(["name", "cwd"]) if p.info["name"] == "hrvs-cell"
            and p.info["cwd"] == str(tmp_path)]
    assert not left


LOOPBACK = r"""
import json, psutil, ray          # ray imported first, as a library user would
from hrvs_ray.cluster.ray_io import connect
connect(None)
addr = ray.nodes()[0]["NodeManagerAddress"]
ips = set()
me = psutil.Process()
for p in [me] + me.children(recursive=True):
    try:
        ips |= {c.laddr.ip for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        pass
ray.shutdown()
print(json.dumps({"addr": addr, "listen": sorted(ips)}))
"""


def test_local_ray_listens_on_loopback_only(tmp_path):
    r = subprocess.run([sys.executable, "-c", LOOPBACK], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["addr"] == "127.0.0.1"
    assert got["listen"] and set(got["listen"]) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, got


def test_batch_larger_than_the_dataset_is_bad_input_and_runs_nothing(tmp_path, write_sweep):
    d = tiny_sweep_dict(tmp_path)
    d["input_sets"]["LR&FS"]["batch_size"] = 1000          # the tiny dataset has 24 images
    p = write_sweep(d)
    for args in (["plan", str(p)], ["sweep", str(p), "--out", str(tmp_path / "r")]):
        r = hrvs(*args, cwd=tmp_path, timeout=120)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "input_sets.LR&FS.batch_size: 1000 exceeds the" in r.stderr
    assert not (tmp_path / "r").exists()
