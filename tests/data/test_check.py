"""``hrvs-ray data check``: every bad image and metadata row of a dataset, listed in one pass."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from hrvs_ray.cli import main
from hrvs_ray.data.check import KINDS, check_image, check_images, items_for, pixel_limit
from hrvs_ray.data.shapes import METADATA_CSV, read_metadata_csv
from hrvs_ray.data.synthetic import generate
from tests.fixtures.bad_dataset import SPEC, make_bad_dataset, write_jpeg


def _sweep(tmp: Path, root: Path, batch: int = 8) -> Path:
    d = {"name": "chk", "dataset": {"kind": "mame", "path": str(root), "subset": "all"},
         "input_sets": {"LR&FS": {"resize": "fixed", "size": [16, 16], "batch_size": batch},
                        "HR&VS": {"resize": "none", "batch_size": 2}},
         "training": {"warmup_steps": 0, "steps": 1, "runs": 1, "seed": 3}, "scopes": ["node"]}
    path = tmp / "chk.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("bad")
    return root, make_bad_dataset(root)


def test_every_kind_of_bad_file_is_listed_once_as_json(bad, tmp_path, capsys):
    root, expected = bad
    rc = main(["data", "check", str(_sweep(tmp_path, root)), "--all", "--format", "json", "--no-progress"])
    out = capsys.readouterr()
    assert rc == 1
    got = json.loads(out.out)
    assert {p["file"]: p["kind"] for p in got} == expected
    assert all(set(p) == {"file", "kind", "detail"} and p["detail"] for p in got)
    assert {p["kind"] for p in got} <= set(KINDS)
    assert "Traceback" not in out.err and "checked 24 images" in out.err


def test_table_output_and_process_pool_give_the_same_problems(bad, tmp_path, capsys):
    root, expected = bad
    rc = main(["data", "check", str(_sweep(tmp_path, root)), "--all", "--workers", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    lines = out.splitlines()
    assert lines[0].split() == ["file", "kind", "detail"] and lines[-1].endswith(f"{len(expected)} problems")
    for file, kind in expected.items():
        assert any(ln.startswith(file) and f" {kind} " in ln for ln in lines), (file, kind)


def test_without_all_only_the_images_the_cells_use_are_checked(tmp_path, capsys):
    """Every image emptied: exactly the cell's two images (one step of batch 2) are listed and
    the exit is 1. Those two restored, the rest still empty: exit 0, nothing listed, so no
    image outside the cells was looked at."""
    root = tmp_path / "ds"
    generate(root, SPEC)
    good = {p.name: p.read_bytes() for p in (root / "data").iterdir()}
    for name in good:
        (root / "data" / name).write_bytes(b"")
    args = ["data", "check", str(_sweep(tmp_path, root, batch=4)), "--input-sets", "HR&VS", "--format", "json",
            "--no-progress"]
    assert main(args) == 1
    out = capsys.readouterr()
    got = json.loads(out.out)
    assert [p["kind"] for p in got] == ["empty", "empty"] and "checked 2 images" in out.err
    used = [Path(p["file"]) for p in got]
    assert len(set(used)) == 2 and all(f.parent == root / "data" for f in used)
    for f in used:
        f.write_bytes(good[f.name])
    assert main(args) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == [] and "checked 2 images" in out.err and "no problems" in out.err


def test_a_clean_dataset_exits_0(tmp_path, capsys):
    generate(tmp_path / "ok", SPEC)
    assert main(["data", "check", str(_sweep(tmp_path, tmp_path / "ok")), "--all", "--no-progress"]) == 0
    assert "no problems" in capsys.readouterr().out


def test_a_malformed_metadata_row_is_a_listed_problem(tmp_path, capsys):
    root = tmp_path / "ds"
    generate(root, SPEC)
    text = (root / METADATA_CSV).read_text().splitlines()
    text[3] = text[3].replace(".0,", ".0x,", 1)
    (root / METADATA_CSV).write_text("\n".join(text) + "\n")
    rc = main(["data", "check", str(_sweep(tmp_path, root)), "--format", "json", "--no-progress"])
    got = json.loads(capsys.readouterr().out)
    assert rc == 1 and [p["kind"] for p in got] == ["metadata"] and "line 4" in got[0]["detail"]


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "dataset.path: MAMe dataset not found"),
    (lambda root: (root / "data").mkdir(parents=True), "dataset.path: MAMe dataset not found"),
])
def test_no_dataset_is_bad_input_naming_dataset_path(tmp_path, capsys, setup, message):
    root = tmp_path / "nowhere"
    setup(root)
    sweep = _sweep(tmp_path, root)
    assert main(["data", "check", str(sweep), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{sweep}: {message}" in err and "hrvs-ray data synth" in err


def test_unknown_input_set_is_bad_input(bad, tmp_path, capsys):
    assert main(["data", "check", str(_sweep(tmp_path, bad[0])), "--input-sets", "XX"]) == 2
    assert "--input-sets: XX not in" in capsys.readouterr().err


def test_synthetic_dataset_not_generated_is_bad_input_and_nothing_is_written(tmp_path, capsys):
    d = yaml.safe_load(_sweep(tmp_path, tmp_path / "syn").read_text())
    d["dataset"] = {"kind": "synthetic", "path": str(tmp_path / "syn"), "synthetic": {"count": 10}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    assert main(["data", "check", str(tmp_path / "s.yaml")]) == 2
    assert "not generated yet" in capsys.readouterr().err and not (tmp_path / "syn").exists()


def _as_nobody(fn):
    """``fn()`` in a child process with uid/gid 65534 (root reads any file, so the
    permission check is real only for another user); returns what it returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, run, report, exit without running pytest's teardown
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, json.dumps(fn()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_a_file_the_user_may_not_read_is_unreadable():
    d = Path(tempfile.mkdtemp(prefix="hrvs-perm-"))
    try:
        d.chmod(0o755)       # the other user may enter the folder, not read the file
        img = d / "a.jpg"
        write_jpeg(img, 20, 30)
        img.chmod(0)

        def run() -> list:
            return [p.to_dict() for p in check_image(str(img), (20, 30), pixel_limit(600), full=True)]

        got = run() if os.geteuid() != 0 else _as_nobody(run)
        assert [(p["kind"], "permission denied" in p["detail"]) for p in got] == [("unreadable", True)]
    finally:
        shutil.rmtree(d)


def test_header_check_does_not_decode_so_misses_only_truncation(bad):
    root, expected = bad
    meta = read_metadata_csv(root / METADATA_CSV)
    shapes = {i: (int(h), int(w)) for i, h, w in zip(meta.ids, meta.heights, meta.widths, strict=False)}
    limit = pixel_limit(max(h * w for h, w in shapes.values()))
    items = items_for(root, sorted(shapes), shapes)
    header = {p.file: p.kind for p in check_images(items, limit, full=False)}
    full = {p.file: p.kind for p in check_images(items, limit, full=True, workers=2)}
    images = {f: k for f, k in expected.items() if not f.endswith(tuple("0123456789"))}
    assert full == images
    assert header == {f: k for f, k in images.items() if k != "truncated"}
