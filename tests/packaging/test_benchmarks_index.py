"""The indexes of benchmarks/ and tools/ are complete: every script in the folder has a row
in its README, and every script a README lists exists (a renamed or deleted script fails
here rather than leaving a dead line). Pure text: fast."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO  # noqa: E402  (after the stdlib imports)


def _listed(folder: str) -> set[str]:
    """Paths the README's index table names in its first column: `folder/name.py`."""
    text = (REPO / folder / "README.md").read_text()
    return set(re.findall(rf"^\|\s*`({folder}/[\w.-]+\.(?:py|sh))`\s*\|", text, flags=re.M))


def _scripts(folder: str) -> set[str]:
    return {f"{folder}/{p.name}" for p in (REPO / folder).iterdir()
            if p.suffix in (".py", ".sh") and p.name != "__init__.py"}


@pytest.mark.parametrize("folder", ["benchmarks", "tools"])
def test_every_script_is_in_its_index(folder: str) -> None:
    assert _scripts(folder), f"{folder}/ holds no scripts: the check would pass vacuously"
    assert _scripts(folder) - _listed(folder) == set(), f"add these to {folder}/README.md"


@pytest.mark.parametrize("folder", ["benchmarks", "tools"])
def test_every_indexed_script_exists(folder: str) -> None:
    assert _listed(folder) - _scripts(folder) == set(), f"{folder}/README.md lists scripts that are not there"


def test_a_script_sits_in_one_folder() -> None:
    # a script is a measurement or a tool, not both
    names = lambda folder: {Path(s).name for s in _scripts(folder)}  # noqa: E731
    assert names("benchmarks") & names("tools") == set()
