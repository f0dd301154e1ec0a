"""The code map (docs/architecture.md) and the package agree, both ways: every path it names
exists, and every module of the package is named in it (in the row of its own folder)."""
from __future__ import annotations

import re

from tests.helpers import REPO

MAP = REPO / "docs" / "architecture.md"


def _code_map() -> dict[str, set[str]]:
    """folder -> module file names, from the code map table."""
    text = MAP.read_text()
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
    assert modules - named == set(), "add these modules to the code map in docs/architecture.md"

