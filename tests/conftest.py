"""Shared fixtures: paths, and tiny sweeps written into tmp folders."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MAME_CSV = SHARED / "data" / "mame" / "MAMe_dataset.csv"


def tiny_sweep_dict(tmp: Path, name: str = "tiny", **over) -> dict:
    """A sweep small enough for a unit test to train for real in seconds."""
    d = {
        "name": name,
        "dataset": {"kind": "synthetic", "path": str(tmp / "ds"), "subset": "train",
                    "synthetic": {"count": 24, "scale": 0.02, "seed": 1, "quality": 85},
                    "cache": str(tmp / "cache")},
        "input_sets": {"LR&FS": {"resize": "fixed", "size": [32, 32], "batch_size": 4},
                       "MR&VS": {"resize": "shorter_side", "size": 32, "batch_size": 2},
                       "HR&VS": {"resize": "none", "batch_size": 2}},
        "training": {"warmup_steps": 1, "steps": 2, "runs": 1, "seed": 7},
        "scopes": ["node"],
        "execution": {"cell_timeout_s": 300, "retries": 1},
    }
    for k, v in over.items():
        d[k] = v
    return d


@pytest.fixture
def write_sweep(tmp_path: Path):
    def _write(data: dict | str, fname: str = "sweep.yaml") -> Path:
        p = tmp_path / fname
        p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return p
    return _write


@pytest.fixture(autouse=True)
def _no_inherited_threads(monkeypatch):
    # A developer's shell may carry OMP_NUM_THREADS; the tool must set its own.
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(k, raising=False)
    yield
