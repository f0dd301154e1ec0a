"""The golden outputs (tests/goldens/): plan JSON, the CLI summary and the report's tables
must not change unless a commit says why and re-records them (python -m tests.goldens.record)."""
from __future__ import annotations

import pytest

from tests.goldens.record import HERE, outputs

pytestmark = pytest.mark.slow


def test_goldens_unchanged():
    now = outputs()
    assert sorted(now) == sorted(p.name for p in HERE.iterdir() if p.suffix in (".json", ".txt"))
    for name, text in now.items():
        assert (HERE / name).read_text() == text, f"{name} changed: run python -m tests.goldens.record --check"
