"""Table cells as plain data, and the formatting every table shares.

Pure. Numbers are formatted here, escaping happens in html.py; a cell may carry a CSS
class from a fixed vocabulary (``best``, ``flag``, ``na``) but never markup. Values that
come from the data (counters, core kinds) are turned into words here, whatever shape the
results folder stored them in (JSON text, a dict, a list of pairs).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

NA = "n/a"


@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""      # one of "", "best", "flag", "na" (set by code, never from data)
    title: str = ""    # tooltip, escaped like everything else


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    empty: str = "no data"
    extra: dict[str, Any] = field(default_factory=dict)


def missing(v: Any) -> bool:
    """None, NaN, NaT, pd.NA or the empty string: nothing recorded."""
    if v is None or (isinstance(v, str) and v == ""):
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # list-likes are values, not missing
        return False


def num(x: Any, spec: str = ".3g") -> str | Cell:
    """A number formatted with ``spec``; missing/NaN shown as 'n/a'."""
    if missing(x):
        return Cell(NA, "na")
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return Cell(NA, "na")
    return format(v, spec)


def sig(x: Any, digits: int = 3) -> str | Cell:
    """``digits`` significant digits without exponent notation: 67.1, 0.512, 0.00731, 1234.
    Small input sets (a smoke sweep's 0.05 MP batches) keep their digits instead of 0.0."""
    if missing(x):
        return Cell(NA, "na")
    v = float(x)
    if math.isnan(v):
        return Cell(NA, "na")
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def interval_bases(rows: list[list[Any]]) -> str:
    """' Intervals here: …' naming what the rows' intervals cover (each interval cell carries
    its basis as its title), so a one-run interval says so beside the table, not only on hover."""
    found = sorted({c.title for r in rows for c in r if isinstance(c, Cell) and c.title})
    return f" Intervals here: {'; '.join(found)}." if found else ""


def uniq(values: Iterable[Any], sep: str = ", ", none: str = "—") -> str:
    """Distinct non-empty values, sorted, joined; ``none`` when there are none."""
    out = sorted({str(v) for v in values if not missing(v)})
    return sep.join(out) if out else none


def as_mapping(v: Any) -> dict[str, Any] | None:
    """A dict from a dict, a JSON object text or a list of (key, value) pairs (a parquet map
    column); None for anything else, e.g. plain text."""
    if isinstance(v, dict):
        return v
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return None
        return v if isinstance(v, dict) else None
    if hasattr(v, "tolist") and not isinstance(v, str):  # a numpy array of pairs
        v = v.tolist()
    if isinstance(v, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in v):
        return dict(v)
    return None


def _words(v: Any) -> str:
    d = as_mapping(v)
    if d is not None:  # a nested status, e.g. {"status": "ok", "scaled": true}
        return str(d["status"]) if set(d) == {"status"} else ", ".join(f"{k} {_words(x)}" for k, x in d.items())
    return str(v)


def counters_text(v: Any) -> str:
    """Which hardware/software events open on a node, as words: 'counted: task-clock,
    page-faults. unsupported: no PMU (ENOENT): cycles, instructions.' Events sharing one
    status are listed together, the counted ones first."""
    d = as_mapping(v)
    if not d:
        return "—" if d is not None or missing(v) else str(v)
    groups: dict[str, list[str]] = {}
    for event, status in d.items():
        groups.setdefault(_words(status), []).append(str(event))
    order = sorted(groups, key=lambda s: (s != "ok", s))
    return " ".join(f"{'counted' if s == 'ok' else s}: {', '.join(groups[s])}." for s in order)


def core_kinds_text(v: Any) -> str:
    """'{"efficiency": 8, "performance": 6}' -> '6 performance + 8 efficiency cores'; '' when
    nothing is recorded."""
    d = as_mapping(v) if not missing(v) else None
    if not d:
        return ""
    items = sorted(d.items(), key=lambda kv: (-float(kv[1]) if isinstance(kv[1], (int, float)) else 0, kv[0]))
    return " + ".join(f"{n} {kind}" for kind, n in items) + " cores"
