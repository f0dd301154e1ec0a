"""The README's code map and the package agree, both ways: every path it names exists, and
every module of the package is named in it (in the row of its own folder)."""
from __future__ import annotations

import re

from tests.helpers import REPO


def _code_map() -> dict[str, set[str]]:
    """folder -> module file names, from the README's code map table."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Code map", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[1].startswith("`hrvs_ray/"):
            continue
        folder = cells[1].strip("`")
        # module names: backticked *.py at the start of each comma-separated item
        names = {m.removeprefix(folder) for m in re.findall(r"(?:^|,\s*)`([\w/]+\.py)`", cells[2])}
        rows.setdefault(folder, set()).update(names)
    return rows


def test_the_map_has_a_row_per_folder():
    folders = {f"{p.relative_to(REPO)}/" for p in [REPO / "hrvs_ray", *(REPO / "hrvs_ray").iterdir()]
               if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders <= set(_code_map())


def test_every_path_the_map_names_exists():
    missing = [f + n for f, names in _code_map().items() for n in names if not (REPO / f / n).is_file()]
    assert not missing


def test_every_module_of_the_package_is_in_the_map():
    named = {f + n for f, names in _code_map().items() for n in names}
    modules = {str(p.relative_to(REPO)) for p in (REPO / "hrvs_ray").rglob("*.py")}
    assert modules - named == set(), "add these modules to the README's code map"


def test_every_path_mentioned_in_the_readme_exists():
    """Paths like `hrvs_ray/x/y.py`, `benchmarks/z.py`, `sweeps/s.yaml` anywhere in the README
    (under reports/, only the committed examples: the others are what a run writes)."""
    text = (REPO / "README.md").read_text()
    paths = set(re.findall(r"`((?:(?:hrvs_ray|benchmarks|sweeps|apptainer|tests)/|reports/example)[\w./+-]*)`", text))
    missing = sorted(p for p in paths if not (REPO / p).exists() and "*" not in p and "<" not in p)
    assert not missing
