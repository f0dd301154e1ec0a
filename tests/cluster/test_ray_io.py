"""Ray is touched in one module: which modules import it, where its private names live, and
that the installed Ray is the one those private names were checked against."""
from __future__ import annotations

import ast
import re

import pytest

from tests.helpers import REPO

PKG = REPO / "hrvs_ray"
RAY_HOME = "hrvs_ray/cluster/ray_io.py"
TOKEN_PROBE = "hrvs_ray/cluster/auth.py"
RAY_TRAIN = "hrvs_ray/cluster/ray_train.py"      # Ray Train, public names only


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(REPO)): ast.parse(p.read_text(), str(p)) for p in sorted(PKG.rglob("*.py"))}


def _ray_imports(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "ray" or a.name.startswith("ray.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and (node.module == "ray" or node.module.startswith("ray.")):
            found.append(node.module)
    return found


@pytest.mark.slow
def test_only_ray_io_the_token_probe_and_ray_train_import_ray():
    importers = {path for path, tree in _modules().items() if _ray_imports(tree)}
    assert importers == {RAY_HOME, TOKEN_PROBE, RAY_TRAIN}


def test_the_token_probe_imports_only_rays_public_exceptions():
    assert set(_ray_imports(_modules()[TOKEN_PROBE])) == {"ray.exceptions"}


@pytest.mark.slow
def test_ray_private_names_live_in_ray_io_only():
    private = re.compile(r"\bray\.(_private|_raylet)\b|\bray\._[a-z]")
    users = {path for path, tree in _modules().items()
             if any(private.search(m) for m in _ray_imports(tree))}
    assert users == {RAY_HOME}
    # and inside it, only in the functions named for it
    tree = _modules()[RAY_HOME]
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        if any(private.search(m) for m in _ray_imports(fn)):
            assert fn.name.startswith("_private_"), fn.name


@pytest.mark.slow
def test_no_module_re_exports_ray():
    """A facade (``from .ray_io import ray``, ``ray_io.ray``) would dodge the import rule."""
    for path, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                assert all(a.name != "ray" and a.asname != "ray" for a in node.names), path
            if isinstance(node, ast.Attribute) and node.attr == "ray" and isinstance(node.value, ast.Name):
                assert node.value.id != "ray_io", path
    home = _modules()[RAY_HOME]
    top = {t.id for n in home.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert "ray" not in top
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and _ray_imports(n) for n in home.body), \
        "ray_io imports Ray inside functions only: importing the module must not start Ray's import"


@pytest.mark.slow
def test_installed_ray_is_the_pinned_one_the_private_names_were_checked_against():
    from hrvs_ray.cluster import ray_io
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)$",
                           (REPO / "apptainer" / "requirements.txt").read_text(), re.M))
    ray_version = pytest.importorskip("ray").__version__
    assert ray_io.RAY_CHECKED_VERSION == pins["ray"], "re-check the private names for the new pin, then update"
    assert ray_version == pins["ray"], f"installed Ray {ray_version} is not the pinned {pins['ray']}"
