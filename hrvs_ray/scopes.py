"""The scope grammar, in one place: ``cores:N`` | ``socket`` | ``node``.

Pure: the sweep validator, the topology mapper and the report all parse, order and label
scopes through these functions, so a scope means the same thing everywhere.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SCOPE_RE = re.compile(r"^(cores:(?P<n>[1-9][0-9]*)|socket|node)$")
SCOPE_HELP = "must be 'cores:N' (N >= 1), 'socket' or 'node'"


@dataclass(frozen=True)
class Scope:
    kind: str            # "cores" | "socket" | "node"
    cores: int | None    # N for cores:N, else None

    @property
    def text(self) -> str:
        return f"cores:{self.cores}" if self.kind == "cores" else self.kind


def parse_scope(text: str) -> Scope:
    """``'cores:4'`` -> Scope('cores', 4); raises ValueError naming the grammar otherwise."""
    m = SCOPE_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"unknown scope {text!r}: {SCOPE_HELP}")
    if m.group("n"):
        return Scope("cores", int(m.group("n")))
    return Scope(m.group(0), None)


def scope_problem(text: object) -> str | None:
    """None if ``text`` is a valid scope, else the grammar it breaks (for validators)."""
    return None if isinstance(text, str) and SCOPE_RE.match(text) else SCOPE_HELP


def scope_key(scope: str) -> tuple[int, int, str]:
    """Smallest scope first: cores:N by N, then socket, then node, then anything else."""
    try:
        s = parse_scope(scope)
    except ValueError:
        return (3, 0, str(scope))
    if s.kind == "cores":
        return (0, int(s.cores or 0), scope)
    return ({"socket": 1, "node": 2}[s.kind], 0, scope)


def scope_label(scope: str) -> str:
    """'cores:4' -> '4 cores' (the paper's wording); 'socket' and 'node' stay as they are."""
    try:
        s = parse_scope(scope)
    except ValueError:
        return str(scope)
    if s.kind == "cores":
        return "1 core" if s.cores == 1 else f"{s.cores} cores"
    return s.kind
