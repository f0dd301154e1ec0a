"""The scope grammar, in one place: ``[R*]SCOPE`` with SCOPE = ``cores:N`` | ``socket`` | ``node``.

Pure: the sweep validator, the topology mapper and the report all parse, order and label
scopes through these functions, so a scope means the same thing everywhere.

A rank count ``R*`` (R >= 2) makes the scope data-parallel: ``2*cores:1`` is two ranks, each
given what a single-rank ``cores:1`` cell gets; ``4*node`` is four ranks, one whole node
each. ``1*SCOPE`` is refused rather than read as ``SCOPE``: a scope has one spelling, so one
setup has one cell id (``1*node`` and ``node`` would name the same cell twice).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

SCOPE_RE = re.compile(r"^((?P<ranks>[0-9]+)\*)?(?P<scope>cores:(?P<n>[1-9][0-9]*)|socket|node)\Z")
SCOPE_HELP = ("must be 'cores:N' (N >= 1), 'socket' or 'node', optionally with a rank count "
              "'R*' (R >= 2) in front for data-parallel ranks, e.g. '2*cores:1'")
ONE_RANK_HELP = "a rank count must be >= 2 ('R*' marks data-parallel ranks); for one rank write the scope alone"


@dataclass(frozen=True)
class Scope:
    kind: str            # "cores" | "socket" | "node"
    cores: int | None    # N for cores:N, else None
    ranks: int = 1       # data-parallel ranks, each given this scope (1: a single-rank cell)

    @property
    def text(self) -> str:
        one = f"cores:{self.cores}" if self.kind == "cores" else self.kind
        return one if self.ranks == 1 else f"{self.ranks}*{one}"

    @property
    def rank(self) -> Scope:
        """What each rank gets: this scope with one rank."""
        return replace(self, ranks=1)


def _problem(text: object) -> tuple[re.Match[str] | None, str | None]:
    m = SCOPE_RE.match(text) if isinstance(text, str) else None
    if not m:
        return None, SCOPE_HELP
    r = m.group("ranks")
    if r is not None and (r.startswith("0") or int(r) < 2):
        return None, ONE_RANK_HELP if r == "1" else SCOPE_HELP
    return m, None


def parse_scope(text: str) -> Scope:
    """``'cores:4'`` -> Scope('cores', 4); ``'2*cores:1'`` -> Scope('cores', 1, ranks=2);
    raises ValueError naming the grammar otherwise."""
    m, problem = _problem(text.strip() if isinstance(text, str) else text)
    if m is None:
        raise ValueError(f"unknown scope {text!r}: {problem}")
    ranks = int(m.group("ranks") or 1)
    if m.group("n"):
        return Scope("cores", int(m.group("n")), ranks)
    return Scope(m.group("scope"), None, ranks)


def scope_problem(text: object) -> str | None:
    """None if ``text`` is a valid scope, else the grammar it breaks (for validators)."""
    return _problem(text)[1]


def ranks_of(scope: str) -> int:
    """The rank count of a scope: ``ranks_of('2*cores:1') == 2``, ``ranks_of('node') == 1``."""
    return parse_scope(scope).ranks


def rank_scope(scope: str) -> str:
    """What each rank of ``scope`` gets: ``rank_scope('2*cores:1') == 'cores:1'``."""
    return parse_scope(scope).rank.text


def scope_key(scope: str) -> tuple[int, int, int, int, str]:
    """Smallest scope first: single-rank scopes (cores:N by N, then socket, then node), then
    data-parallel ones by their rank scope in that order and then by rank count, then
    anything that is not a scope."""
    try:
        s = parse_scope(scope)
    except ValueError:
        return (2, 0, 0, 0, str(scope))
    kind = {"cores": 0, "socket": 1, "node": 2}[s.kind]
    return (int(s.ranks > 1), kind, int(s.cores or 0), s.ranks, scope)


def scope_label(scope: str) -> str:
    """'cores:4' -> '4 cores' (the paper's wording); 'socket' and 'node' stay as they are;
    a data-parallel scope reads '2 × 1 core' (ranks × what each rank gets)."""
    try:
        s = parse_scope(scope)
    except ValueError:
        return str(scope)
    one = s.kind if s.kind != "cores" else ("1 core" if s.cores == 1 else f"{s.cores} cores")
    return one if s.ranks == 1 else f"{s.ranks} × {one}"
