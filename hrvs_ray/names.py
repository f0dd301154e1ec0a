"""Names turned into safe pieces of file names, cell ids and HTML ids, in one place.

Pure. The rules differ on purpose and each is frozen: an input-set key and a cell id are
stored in results folders and prepared-image caches, a path component names files already
on disk, so changing a rule would orphan existing results. Each caller uses the named
function for what it names. Three rules replace one character at a time (``_replace``);
three replace runs of characters by regular expression, as their callers always did.
"""
from __future__ import annotations

import re
from collections.abc import Callable

_NOT_ASCII_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_NOT_NODE_CHAR = re.compile(r"[^A-Za-z0-9._-]+")
_NOT_SVG_CHAR = re.compile(r"[^A-Za-z0-9-]")


def _replace(text: str, keep: Callable[[str], bool]) -> str:
    """Every character ``keep`` rejects becomes '-', one for one (no collapsing)."""
    return "".join(c if keep(c) else "-" for c in text)


def input_set_key(name: str) -> str:
    """'LR&FS' -> 'lr-fs': ASCII letters and digits, runs of anything else collapsed to one
    '-', lower case. Used in cell ids and cache folders."""
    return _NOT_ASCII_ALNUM.sub("-", name).strip("-").lower() or "set"


def id_part(text: str) -> str:
    """One dot-separated part of a cell id ('cores:4' -> 'cores-4'): Unicode letters and
    digits, '-' and '_' are kept, anything else (including '.') becomes '-'."""
    return _replace(text, lambda c: c.isalnum() or c in "-_")


def path_component(text: str) -> str:
    """A file or folder name from a cluster name or cell id: like ``id_part`` but '.' is
    kept (cell ids contain dots); never empty."""
    return _replace(text, lambda c: c.isalnum() or c in "-_.") or "-"


def node_slug(text: str) -> str:
    """A cluster name from a CPU model string ('Intel(R) Xeon(R) ...' -> 'Intel-R-Xeon-R-...'):
    ASCII letters, digits, '.', '_' and '-'; runs of anything else collapsed."""
    return _NOT_NODE_CHAR.sub("-", text).strip("-") or "unknown"


def svg_id_prefix(text: str) -> str:
    """A prefix that makes one inline SVG's ids unique in the report page: ASCII letters,
    digits and '-' kept, anything else becomes '-' one for one (case kept)."""
    return _NOT_SVG_CHAR.sub("-", text)


def html_id(text: str) -> str:
    """An HTML id fragment ('cores:4' -> 'cores-4'): lower case, letters and digits."""
    return _replace(text.lower(), str.isalnum).strip("-")
