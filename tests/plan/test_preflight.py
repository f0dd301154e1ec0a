"""The sweep's pre-flight: validated against the dataset, every bad image listed at once,
before Ray starts or anything is written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hrvs_ray.cli import main
from hrvs_ray.config import SweepError, parse_sweep
from hrvs_ray.data.shapes import METADATA_CSV, read_metadata_csv
from hrvs_ray.data.synthetic import generate
from hrvs_ray.plan.preflight import DataProblems, check_dataset, needed_image_ids, planned_table, preflight
from hrvs_ray.plan.seeded_order import batch_indices
from tests.fixtures.bad_dataset import SPEC, make_bad_dataset
from tests.helpers import REPO, tiny_sweep_dict


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if the sweep gets as far as starting Ray."""
    def boom(*a, **k):
        raise AssertionError("Ray was started")
    monkeypatch.setattr("hrvs_ray.cluster.ray_io.connect", boom)


def _write(tmp: Path, d: dict) -> Path:
    p = tmp / "sweep.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def test_needed_ids_are_the_union_of_the_cells_batches(tmp_path):
    s = parse_sweep(tiny_sweep_dict(tmp_path, training={"warmup_steps": 1, "steps": 2, "runs": 2, "seed": 7}))
    table, _ = planned_table(s)
    want = set()
    for iset in s.input_sets:
        for run in range(2):
            want |= set(batch_indices(len(table), 7, run, iset.batch_size, 3).ravel().tolist())
    assert needed_image_ids(s, table) == [table.ids[i] for i in sorted(want)]
    only = needed_image_ids(s, table, {"HR&VS"})
    assert set(only) < set(needed_image_ids(s, table)) and len(only) <= 2 * 3 * 2


def test_needed_ids_cover_every_batching_policy(tmp_path):
    d = tiny_sweep_dict(tmp_path, remedies={"batching": ["pad", "bucket", "accumulate"], "window": 2})
    s = parse_sweep(d)
    table, _ = planned_table(s)
    from hrvs_ray.plan.cells import plan_cells, step_plan
    want = {table.ids[i] for c in plan_cells(s, ["x"]) for i in step_plan(c, table.heights, table.widths).ravel()}
    assert set(needed_image_ids(s, table)) == want


def test_synthetic_batch_too_large_fails_before_generating(tmp_path):
    d = tiny_sweep_dict(tmp_path)
    d["input_sets"]["LR&FS"]["batch_size"] = 5000
    s = parse_sweep(d, "x.yaml")
    with pytest.raises(SweepError) as e:
        preflight(s)
    assert e.value.key == "input_sets.LR&FS.batch_size" and "exceeds the" in e.value.problem
    assert "synthetic dataset to be generated" in e.value.problem
    assert not (tmp_path / "ds").exists()


def test_preflight_generates_then_returns_the_dataset(tmp_path):
    s = parse_sweep(tiny_sweep_dict(tmp_path))
    planned = check_dataset(s)
    ds = preflight(s)
    assert list(ds.table.ids) == list(planned.ids) and (tmp_path / "ds" / METADATA_CSV).is_file()


def test_every_bad_needed_image_is_listed_but_truncation_waits_for_decode(tmp_path):
    root = tmp_path / "bad"
    expected = make_bad_dataset(root, bad_medium=False)
    d = tiny_sweep_dict(tmp_path, training={"warmup_steps": 0, "steps": 1, "runs": 1, "seed": 1})
    d["dataset"] = {"kind": "mame", "path": str(root), "subset": "all"}
    d["input_sets"] = {"all": {"resize": "none", "batch_size": SPEC.count}}
    with pytest.raises(DataProblems) as e:
        preflight(parse_sweep(d, "s.yaml"))
    got = {p.file: p.kind for p in e.value.problems}
    assert got == {f: k for f, k in expected.items() if k != "truncated"}
    msg = str(e.value)
    assert msg.startswith("s.yaml: 6 of the 24 images the cells need cannot be used")
    assert all(f in msg for f in got) and "hrvs-ray data check s.yaml" in msg


def test_cli_sweep_lists_bad_images_exits_2_writes_nothing_starts_nothing(tmp_path, monkeypatch, capsys, no_ray):
    root = tmp_path / "bad"
    expected = make_bad_dataset(root, bad_medium=False)
    d = tiny_sweep_dict(tmp_path)
    d["dataset"] = {"kind": "mame", "path": str(root), "subset": "all", "cache": str(tmp_path / "cache")}
    d["input_sets"] = {"all": {"resize": "none", "batch_size": SPEC.count}}
    p = _write(tmp_path, d)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(p), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "hrvs-ray data check" in err
    assert sum(f in err for f in expected) == 6
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_cli_missing_mame_names_dataset_path_and_keeps_the_help(tmp_path, monkeypatch, capsys, no_ray):
    d = tiny_sweep_dict(tmp_path)
    d["dataset"] = {"kind": "mame", "path": "data/MAMe"}
    p = _write(tmp_path, d)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}: dataset.path: MAMe dataset not found: no MAMe_dataset.csv" in err
    assert "https://hpai.bsc.es/MAMe-dataset/" in err and "hrvs-ray data synth --out" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_cli_synthetic_batch_too_large_writes_nothing(tmp_path, monkeypatch, capsys, no_ray):
    d = tiny_sweep_dict(tmp_path)
    d["dataset"]["path"] = "data/syn"
    d["input_sets"]["HR&VS"]["batch_size"] = 25
    p = _write(tmp_path, d)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}: input_sets.HR&VS.batch_size: 25 exceeds the" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_a_generated_synthetic_dataset_is_read_not_replanned(tmp_path):
    s = parse_sweep(tiny_sweep_dict(tmp_path))
    generate(tmp_path / "ds", s.dataset.synthetic)
    table, where = planned_table(s)
    meta = read_metadata_csv(tmp_path / "ds" / METADATA_CSV).select("train").sorted()
    assert where.endswith(METADATA_CSV) and table.ids == meta.ids
    assert np.array_equal(table.heights, meta.heights)


def test_an_unknown_medium_fails_at_dataset_path_pointing_to_data_check(tmp_path):
    root = tmp_path / "bad"
    make_bad_dataset(root)
    d = tiny_sweep_dict(tmp_path)
    d["dataset"] = {"kind": "mame", "path": str(root), "subset": "all"}
    with pytest.raises(SweepError) as e:
        preflight(parse_sweep(d, "s.yaml"))
    assert e.value.key == "dataset.path" and "'Not a medium'" in e.value.problem
    assert "hrvs-ray data check s.yaml" in e.value.problem


@pytest.mark.slow
def test_the_validation_path_imports_neither_torch_nor_ray():
    code = ("import sys, hrvs_ray.config, hrvs_ray.plan.preflight, hrvs_ray.data.check;"
            "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert out.strip() == "[]"
