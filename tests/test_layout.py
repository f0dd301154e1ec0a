"""The tests are laid out like the code (issue 24): a folder per package folder of hrvs_ray,
plus shared/ (its top-level modules), e2e/, packaging/, goldens/ and fixtures/; a test file
imports what it shares from tests/helpers.py and gets fixtures from conftest.py, never
imports conftest or another test file, and never edits sys.path."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, cli_env

TESTS = REPO / "tests"
PACKAGE = REPO / "hrvs_ray"
EXTRA = {"shared", "e2e", "packaging", "goldens", "fixtures"}
TEST_FILES = sorted(TESTS.rglob("test_*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names.add(n.id)
    return names


def _fixtures(tree: ast.Module) -> set[str]:
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any("fixture" in ast.unparse(d) for d in node.decorator_list)}


def test_the_test_files_were_found():
    assert len(TEST_FILES) >= 70, TEST_FILES


def test_every_folder_is_a_package_folder_of_hrvs_ray_or_a_named_extra():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders - packages - EXTRA == set(), "a tests/ folder for no package folder of hrvs_ray"
    assert {"e2e", "packaging", "shared"} <= folders


def test_test_files_live_in_those_folders_each_a_package():
    stray = [p.relative_to(TESTS) for p in TEST_FILES
             if p.parent != TESTS and p.parent.parent != TESTS]
    assert not stray, f"one folder deep only: {stray}"
    top = sorted(p.name for p in TEST_FILES if p.parent == TESTS)
    assert top == ["test_layout.py"], f"move these into the folder of the module they test: {top}"
    for folder in {p.parent for p in TEST_FILES} | {TESTS}:
        assert (folder / "__init__.py").is_file(), f"{folder}: no __init__.py (equal basenames would clash)"


def test_no_test_file_imports_conftest_or_another_test_file():
    bad = []
    for path in [*TEST_FILES, TESTS / "helpers.py", *TESTS.glob("fixtures/*.py")]:
        for node in ast.walk(_tree(path)):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for m in mods:
                last = m.rsplit(".", 1)[-1]
                if last == "conftest" or last.startswith("test_"):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno} imports {m}")
    assert not bad, bad


def test_no_test_file_edits_sys_path():
    bad = []
    for path in [*TEST_FILES, TESTS / "conftest.py", TESTS / "helpers.py"]:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and ast.unparse(node).startswith("sys.path.") \
                    and node.attr in ("insert", "append", "extend"):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not bad, f"import through the package instead (tests.helpers, tests.fixtures): {bad}"


def test_conftest_holds_fixtures_only():
    tree = _tree(TESTS / "conftest.py")
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Assign)]
    assert {n.name for n in defs if isinstance(n, ast.FunctionDef)} == _fixtures(tree), \
        "helpers go in tests/helpers.py"
    assert not [n for n in defs if not isinstance(n, ast.FunctionDef)], "helpers go in tests/helpers.py"


def test_no_shared_helper_or_fixture_is_defined_again_in_a_test_file():
    def bare(name: str) -> str:
        return name.lstrip("_")
    shared = {bare(n) for n in _top_level_names(_tree(TESTS / "helpers.py")) if not n.startswith("_")}
    shared |= {bare(n) for n in _fixtures(_tree(TESTS / "conftest.py"))}
    again = {f"{p.relative_to(TESTS)}: {n}" for p in TEST_FILES
             for n in _top_level_names(_tree(p)) if bare(n) in shared}
    assert not again, f"import these from tests.helpers (or use the conftest fixture): {sorted(again)}"


def test_the_cli_helpers_subprocesses_import_this_checkout(tmp_path):
    """hrvs() and cli_env(): a subprocess started elsewhere imports the tree under test, not a
    copy of hrvs_ray installed in the environment."""
    r = subprocess.run([sys.executable, "-c", "import hrvs_ray; print(hrvs_ray.__file__)"], capture_output=True,
                       text=True, cwd=tmp_path, env=cli_env(), timeout=60, check=True)
    assert Path(r.stdout.strip()).resolve() == (REPO / "hrvs_ray" / "__init__.py").resolve()
