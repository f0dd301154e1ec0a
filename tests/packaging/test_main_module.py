"""``python -m hrvs_ray`` is the ``hrvs-ray`` console script: same parser, same output,
same exit codes (a job entrypoint or bare container may only have the interpreter on PATH)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tomllib

from tests.helpers import REPO


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def _console_script(*args: str) -> subprocess.CompletedProcess:
    """What the installed ``hrvs-ray`` runs: the entry point pyproject names, called as pip's
    generated launcher calls it."""
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["hrvs-ray"]
    module, func = target.split(":")
    code = f"import sys; sys.argv[0] = 'hrvs-ray'; from {module} import {func}; sys.exit({func}())"
    return _run("-c", code, *args)


@pytest.mark.slow
def test_module_prints_the_same_plan_as_the_console_script():
    a = _run("-m", "hrvs_ray", "plan", "sweeps/smoke.yaml")
    b = _console_script("plan", "sweeps/smoke.yaml")
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and "HR&VS" in a.stdout


def test_module_help_lists_every_command_under_the_tools_name():
    r = _run("-m", "hrvs_ray", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: hrvs-ray")
    for cmd in ("sweep", "plan", "report", "data", "node-info"):
        assert cmd in r.stdout


@pytest.mark.slow
def test_module_keeps_the_exit_code_of_bad_input(tmp_path):
    missing = tmp_path / "nope.yaml"
    a = _run("-m", "hrvs_ray", "plan", str(missing))
    b = _console_script("plan", str(missing))
    assert a.returncode == b.returncode == 2
    assert str(missing) in a.stderr and a.stderr == b.stderr
