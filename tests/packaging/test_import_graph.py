"""The package's import graph, read from the source (no module is imported): no module
imports itself back through others, Ray stays in ``cluster/``, and the pure layers stay
free of torch and Ray.

Every ``import`` and ``from … import`` counts, also those inside functions and under
``TYPE_CHECKING``: a function-local import only hides a circle until the day the function
runs first, which is where the old ``actors`` <-> ``zygote`` circle lived.
"""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from tests.helpers import REPO

PKG = REPO / "hrvs_ray"

# Design guide: config, plan, store and metrics are pure and fast to test.
PURE = ("config", "plan", "store", "metrics")
# the only modules that may import ray themselves (ray_io: everything Ray; auth: Ray's
# public exception type for a refused token; ray_train: Ray Train, for data-parallel cells)
RAY_MODULES = {"hrvs_ray.cluster.ray_io", "hrvs_ray.cluster.auth", "hrvs_ray.cluster.ray_train"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


@cache
def imports(module: str) -> frozenset[str]:
    """Absolute names ``module`` imports: modules of this package where the name is one
    (``from . import ray_io`` names a module, ``from ..config import Sweep`` the package),
    else the top-level name of a library (``torch``, ``ray``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(_ours(alias.name) or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("hrvs_ray"):
                found.add(target.split(".")[0])
                continue
            for alias in node.names:       # a submodule if it is one, else a name in ``target``
                found.add(_ours(f"{target}.{alias.name}") or _ours(target) or target)
    found.discard(module)
    return frozenset(found)


def _ours(name: str) -> str | None:
    """The module of this package that ``name`` is, or is inside of (None: not ours)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(imports(v) & MODULES.keys()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(MODULES):
        if m not in index:
            visit(m)
    return out


def reach(module: str) -> set[str]:
    """Every name ``module`` imports, directly or through modules of this package."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in imports(todo.pop()):
            if name not in seen:
                seen.add(name)
                if name in MODULES:
                    todo.append(name)
    return seen


def test_the_walk_sees_every_module_and_resolves_relative_imports() -> None:
    # the walk itself: a test that found no module would pass every check below
    assert len(MODULES) > 60 and "hrvs_ray.cluster.driver" in MODULES
    assert "hrvs_ray.cluster.ray_io" in imports("hrvs_ray.cluster.driver")          # from . import ray_io
    assert "hrvs_ray.config" in imports("hrvs_ray.cluster.driver")                  # from ..config import Sweep
    assert "hrvs_ray.cluster.node_probe" in imports("hrvs_ray.cluster.ray_io")      # function-local
    assert "ray" in imports("hrvs_ray.cluster.ray_io")


def test_no_import_circle() -> None:
    assert _cycles() == []


def test_only_cluster_imports_ray_and_there_only_its_ray_modules() -> None:
    direct = {m for m in MODULES if "ray" in imports(m)}
    assert direct == RAY_MODULES


def test_one_cells_process_never_imports_ray() -> None:
    """The cell's process and the zygote run without Ray: a cell forked from the zygote
    must not carry Ray's threads, and tests run them without a Ray."""
    for m in ("hrvs_ray.cluster.cell_process", "hrvs_ray.cluster.zygote"):
        assert "ray" not in reach(m), m


def test_pure_layers_import_neither_torch_nor_ray() -> None:
    for m in MODULES:
        if m.split(".")[1:2] and m.split(".")[1] in PURE:
            assert not {"torch", "torchvision", "ray"} & reach(m), m
