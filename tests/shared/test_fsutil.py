"""Atomic writes that honour the umask: results a team can share."""
from __future__ import annotations

import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hrvs_ray.config import DatasetSpec, InputSetSpec, SyntheticSpec
from hrvs_ray.data.inputs import PreparedSet
from hrvs_ray.data.mame import open_dataset
from hrvs_ray.data.synthetic import generate
from hrvs_ray.fsutil import atomic_write, atomic_write_bytes, atomic_write_text
from hrvs_ray.store import STEPS_SCHEMA, ResultStore, conform


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the old one back."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _write_results(root: Path) -> list[Path]:
    st = ResultStore.open(root, "s", "fp", {"a": 1})
    now = datetime.now(timezone.utc)
    st.write_cell({"sweep": "s", "cell_id": "c", "cluster": "k", "node": "n", "scope": "node", "input_set": "x",
                   "run": 0, "status": "ok", "started_at": now, "finished_at": now},
                  conform([{"sweep": "s", "cell_id": "c", "cluster": "k", "step": 0, "seconds": 0.1}], STEPS_SCHEMA))
    st.write_node({"node": "n", "cluster": "k", "hostname": "h", "collected_at": now})
    return [root / "sweep.json", st.cells_path, st.nodes_path, st.steps_path("k", "c")]


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_results_files_get_the_umask_mode(tmp_path, umask, mask, want):
    umask(mask)
    files = _write_results(tmp_path / "r")
    assert {f.name: oct(_mode(f)) for f in files} == {f.name: oct(want) for f in files}


def test_synthetic_images_and_prepared_arrays_get_the_umask_mode(tmp_path, umask):
    umask(0o027)
    generate(tmp_path / "ds", SyntheticSpec(count=4, scale=0.02, seed=1))
    ds = open_dataset(DatasetSpec(kind="mame", path=str(tmp_path / "ds"), subset="all"))
    ps = PreparedSet(ds, InputSetSpec("x", "fixed", 1, (8, 8)), tmp_path / "cache")
    ps.prepare(ds.table.ids[:2])
    made = list((tmp_path / "ds").rglob("*.*")) + list((tmp_path / "cache").rglob("*.npy"))
    assert len(made) > 6 and {oct(_mode(p)) for p in made if p.is_file()} == {oct(0o640)}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def half(tmp: Path) -> None:
        tmp.write_text("ne")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        atomic_write(target, half)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    atomic_write_bytes(target, b"new", fsync=True)
    assert target.read_bytes() == b"new"


def test_private_dir_is_made_700_and_refused_when_others_may_write(tmp_path):
    import os

    from hrvs_ray.fsutil import private_dir

    d = private_dir(tmp_path, "x")
    assert d == tmp_path / f"x-{os.getuid()}" and d.stat().st_mode & 0o777 == 0o700
    d.chmod(0o775)
    assert private_dir(tmp_path, "x") is None
    assert private_dir(tmp_path / "missing" / "deeper", "x") is None   # cannot be made
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (tmp_path / f"y-{os.getuid()}").symlink_to(mine)     # ours and private, but a link: refused
    assert private_dir(tmp_path, "y") is None
