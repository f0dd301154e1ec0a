"""Running as a Ray job, the pure parts: which Ray to use, where results may not land, and
the driver's code against the workers'. (tests/e2e/test_ray_job_submit.py drives the real
`ray job submit` on a two-node cluster.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hrvs_ray.cluster.ray_job import (
    JOB_CONFIG_VAR,
    JobPathError,
    VersionSkew,
    check_outside_job_package,
    check_same_code,
    choose_address,
    job_package_dir,
)
from tests.helpers import REPO

JOB_ENV = {JOB_CONFIG_VAR: json.dumps({"runtime_env": {"working_dir": "gcs://_ray_pkg_0123abcd.zip"}})}


def test_address_flag_wins_and_local_is_always_private():
    env = {"RAY_ADDRESS": "10.0.0.1:6379"}
    assert choose_address("local", env).target is None
    assert choose_address("h:1", env).target == "h:1"
    a = choose_address(None, env)
    assert a.target == "auto" and "RAY_ADDRESS=10.0.0.1:6379" in a.why   # ray.init reads it, as ray.init() does
    assert choose_address(None, {}).target is None
    assert choose_address(None, {"RAY_ADDRESS": "  "}).target is None


def test_a_dashboard_url_in_ray_address_is_named():
    with pytest.raises(ConnectionError, match="names a Ray dashboard.*--address local"):
        choose_address(None, {"RAY_ADDRESS": "http://127.0.0.1:8265"})


def _pkg(tmp_path: Path) -> Path:
    pkg = tmp_path / "session_x" / "runtime_resources" / "working_dir_files" / "_ray_pkg_0123abcd"
    pkg.mkdir(parents=True)
    return pkg


def test_package_dir_is_found_by_its_place_or_as_the_jobs_working_dir(tmp_path):
    pkg = _pkg(tmp_path)
    assert job_package_dir(Path("results/smoke"), cwd=pkg, env={}) == pkg          # Ray's unpack folder
    plain = tmp_path / "wd"
    plain.mkdir()
    assert job_package_dir(Path("results/smoke"), cwd=plain, env=JOB_ENV) == plain  # a job's working_dir
    assert job_package_dir(Path("results/smoke"), cwd=plain, env={}) is None       # not a job
    assert job_package_dir(tmp_path / "shared/out", cwd=pkg, env=JOB_ENV) is None  # --out elsewhere
    assert job_package_dir(pkg / ".." / ".." / "x", cwd=pkg, env={}) is None       # .. leaves it


@pytest.mark.parametrize("given", [True, False])
def test_results_inside_the_package_are_refused_given_or_defaulted(tmp_path, given):
    pkg = _pkg(tmp_path)
    with pytest.raises(JobPathError) as e:
        check_outside_job_package(Path("results/smoke"), given=given, cwd=pkg, env=JOB_ENV)
    msg = str(e.value)
    assert "pass --out on a shared path" in msg and str(pkg) in msg
    assert ("default results folder" in msg) is not given


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", JOB_CONFIG_VAR)}
    e.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", "hrvs_ray", *args], capture_output=True, text=True, cwd=cwd,
                          env=e, timeout=120)


@pytest.mark.slow
def test_cli_refuses_the_default_results_folder_in_a_job_before_anything_runs(tmp_path):
    pkg = _pkg(tmp_path)
    (pkg / "smoke.yaml").write_text((REPO / "sweeps" / "smoke.yaml").read_text())
    r = _cli(["sweep", "smoke.yaml", "--no-report"], pkg, RAY_ADDRESS="127.0.0.1:1", **JOB_ENV)
    assert r.returncode == 2, r.stderr
    assert "pass --out on a shared path" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in pkg.iterdir()) == ["smoke.yaml"]   # no dataset, no cache, no results


@pytest.mark.slow
def test_cli_names_a_dashboard_address(tmp_path):
    r = _cli(["sweep", str(REPO / "sweeps" / "smoke.yaml"), "--out", str(tmp_path / "r")], tmp_path,
             RAY_ADDRESS="http://127.0.0.1:8265")
    assert r.returncode == 2 and "names a Ray dashboard" in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()


DRIVER = {"hrvs_ray_version": "0.1.0", "git_revision": "abc", "package_dir": "/venv/hrvs_ray"}


def test_same_code_everywhere_passes_and_any_difference_is_refused():
    check_same_code(DRIVER, {"a": {**DRIVER, "package_dir": "/other/copy"}, "b": DRIVER})  # same code, any place
    with pytest.raises(VersionSkew) as e:
        check_same_code(DRIVER, {"a": DRIVER, "b": {"hrvs_ray_version": "0.1.0", "git_revision": None,
                                                    "package_dir": "/tmp/ray/_ray_pkg_1/hrvs_ray"}})
    msg = str(e.value)
    assert "node b: version 0.1.0, revision unknown, from /tmp/ray/_ray_pkg_1/hrvs_ray" in msg
    assert "node a" not in msg and "revision abc, from /venv/hrvs_ray" in msg
    with pytest.raises(VersionSkew, match="version 0.2.0"):
        check_same_code(DRIVER, {"a": {**DRIVER, "hrvs_ray_version": "0.2.0"}})


def test_schema_2_folders_read_with_null_driver_columns(tmp_path):
    from hrvs_ray.store import CELLS_SCHEMA, ResultStore, conform, read_results

    st = ResultStore.open(tmp_path / "r", "s", "fp", {"name": "s"})
    old = conform([{"sweep": "s", "cell_id": "c1", "status": "skipped"}], CELLS_SCHEMA).drop_columns(
        ["driver_version", "driver_revision"])
    pq.write_table(old.replace_schema_metadata({b"schema_version": b"2"}), st.cells_path)
    cells = read_results(tmp_path / "r").cells
    assert cells.column("driver_version").to_pylist() == [None]
    assert cells.column("driver_revision").to_pylist() == [None]
