"""Fixtures only (what tests share that is not a fixture is in tests/helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import cli_env, unpack_machine


@pytest.fixture
def write_sweep(tmp_path: Path):
    def _write(data: dict | str, fname: str = "sweep.yaml") -> Path:
        p = tmp_path / fname
        p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return p
    return _write


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    """machine(name) -> root folder of tests/fixtures/topologies/NAME.tar.gz, a recorded machine
    (unpacked once per module: read it, or copy it to edit)."""
    roots: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in roots:
            roots[name] = unpack_machine(name, tmp_path_factory.mktemp(name.replace("+", "_")))
        return roots[name]
    return get


@pytest.fixture(autouse=True, scope="session")
def _this_checkout_for_every_process():
    """Every process a test starts imports this checkout, not a copy of hrvs_ray installed in
    the venv: the CLI helpers set it per call (``cli_env``), but Ray nodes started in-process
    (``ray.cluster_utils.Cluster``) and plain ``subprocess`` calls inherit this environment."""
    import os

    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = cli_env()["PYTHONPATH"]
    yield
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


@pytest.fixture(autouse=True)
def _short_ceiling_caps(monkeypatch):
    # every sweep a test runs measures each node's ceiling twice (before and after its cells):
    # a quarter of the caps keeps that to a few seconds; a test of the ceiling passes its own
    monkeypatch.setenv("HRVS_CEILING_CAP_SCALE", "0.25")
    yield


@pytest.fixture(autouse=True)
def _no_inherited_threads(monkeypatch):
    # A developer's shell may carry OMP_NUM_THREADS; the tool must set its own.
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(k, raising=False)
    yield
