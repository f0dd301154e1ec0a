"""The sweep validator's tools: a walker that names the key path of every problem, value
checks, and a bounded preview of any value a message echoes.

Pure: imports neither torch nor ray. Every problem is a ``SweepError`` whose text is
``FILE: key.path: problem`` (or ``FILE: problem`` where no key is at fault).
"""
from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from typing import Any

from ..errors import UserError

Check = Callable[[Any], "str | None"]
PREVIEW_CHARS = 60

# reprlib bounds the work as well as the text: a value built from YAML aliases can be a
# tiny object graph that expands to billions of elements when printed in full.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 2, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = PREVIEW_CHARS, PREVIEW_CHARS, 24


class SweepError(UserError, ValueError):
    """A sweep file that cannot be run. ``str()`` names file, key path and problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + problem)


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A short repr of ``value`` (at most about ``limit`` characters), whatever its size."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(v), type(v).__name__)


def typename(t: type | tuple) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean",
             list: "a list", dict: "a mapping"}
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def at_least(low: int) -> Check:
    return lambda v: None if v >= low else f"must be >= {low}"


def in_range(low: int, high: int) -> Check:
    return lambda v: None if low <= v <= high else f"must be in {low}..{high}"


def fraction(v: float) -> str | None:
    return None if 0 < v <= 1 else "must be in (0, 1]"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def not_blank(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


class Validator:
    """Walks a mapping by key path, raising SweepError on the first problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> None:
        raise SweepError(self.source, key, problem)

    def mapping(self, value: Any, key: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, got {kind(value)}")
        for k in value:
            if not isinstance(k, str):
                self.fail(key, f"keys must be strings, got {preview(k)}")
            if k not in allowed:
                self.fail(join(key, k), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for k in sorted(required):
            if k not in value:
                self.fail(join(key, k), "missing required key")
        return value

    def value(self, v: Any, path: str, typ: type | tuple, check: Check | None = None) -> Any:
        """``v`` checked against ``typ`` (an int is accepted as a number) and ``check``."""
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, bool) and typ is not bool:
            self.fail(path, f"must be {typename(typ)}, got a boolean")
        if not isinstance(v, typ):
            self.fail(path, f"must be {typename(typ)}, got {kind(v)} {preview(v)}")
        problem = check(v) if check is not None else None
        if problem:
            self.fail(path, f"{problem}, got {preview(v)}")
        return v

    def get(self, m: dict, key: str, name: str, typ: type | tuple, default: Any = None,
            check: Check | None = None) -> Any:
        """``m[name]`` checked (see ``value``), or ``default`` when the key is absent."""
        if name not in m:
            return default
        return self.value(m[name], join(key, name), typ, check)

    def field(self, m: dict, key: str, spec: type, name: str, typ: type | tuple,
              check: Check | None = None) -> Any:
        """``m[name]`` checked, or the default that ``spec`` (a dataclass) declares for its
        field ``name``: the dataclass is the one place a default is written."""
        return self.get(m, key, name, typ, default_of(spec, name), check)

    def choices(self, value: Any, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """One of ``allowed`` or a non-empty list of them without duplicates, as a tuple."""
        items = value if isinstance(value, list) else [value]
        if not items:
            self.fail(key, f"must be one of {', '.join(allowed)} or a non-empty list of them")
        out: list[str] = []
        for i, item in enumerate(items):
            path = f"{key}[{i}]" if isinstance(value, list) else key
            self.value(item, path, str, one_of(*allowed))
            if item in out:
                self.fail(path, f"duplicate value {preview(item)}")
            out.append(item)
        return tuple(out)


def default_of(spec: type, name: str) -> Any:
    """The default a dataclass declares for its field ``name``."""
    f = {f.name: f for f in dataclasses.fields(spec)}[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise KeyError(f"{spec.__name__}.{name} has no default")
