"""How a sweep shows its progress to a person: a tqdm bar on a terminal, plain lines
otherwise. The CLI picks one and hands it to the driver, which only calls its methods."""
from __future__ import annotations

import sys
from typing import Any


class LinePrinter:
    """No bar: every message a line on stderr (logs, CI, --no-progress)."""
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def write(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)
    def close(self) -> None: ...


def cell_progress(enabled: bool) -> Any:
    """A factory ``(total, initial) -> progress`` for the sweep driver."""
    def make(total: int, initial: int) -> Any:
        if not enabled:
            return LinePrinter()
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="cell", desc="cells", file=sys.stderr,
                    dynamic_ncols=True, disable=None)
    return make
