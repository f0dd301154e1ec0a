"""Which heap allocator this process runs: glibc's malloc, or one preloaded in its place.

The allocator shapes RSS as much as the kernel caches do (how freed memory is kept or
returned), so each cell records it. Read from the libraries mapped into the process
(``/proc/self/maps``), which also catches an allocator linked in rather than preloaded,
and from ``LD_PRELOAD``. No torch import.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

KNOWN = ("jemalloc", "tcmalloc", "mimalloc")
_LIB = re.compile(r"lib(" + "|".join(KNOWN) + r")[\w.+-]*\.so")


def detect_allocator(maps: str | None = None, preload: str | None = None) -> str:
    """``jemalloc`` / ``tcmalloc`` / ``mimalloc`` when one is mapped or preloaded, else ``glibc``.
    ``maps`` and ``preload`` default to this process's own."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            maps = ""
    if preload is None:
        preload = os.environ.get("LD_PRELOAD", "")
    for text in (maps, preload):
        m = _LIB.search(text)
        if m:
            return m.group(1)
    return "glibc"
