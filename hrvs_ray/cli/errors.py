"""Exit codes and the one way the command line reports an error."""
from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(msg: str) -> None:
    print(f"hrvs-ray: error: {msg}", file=sys.stderr)
