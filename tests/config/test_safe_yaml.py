"""Malformed sweep files: every one is ``FILE: key.path: problem``, exit 2, no traceback,
nothing written, nothing started (the batch/dataset cases are in tests/plan/test_preflight.py)."""
from __future__ import annotations

import pytest
import yaml

from hrvs_ray.cli import main
from hrvs_ray.config import SweepError, load_sweep, parse_sweep
from hrvs_ray.config.check import preview
from hrvs_ray.config.safe_yaml import MAX_NODES, load_yaml
from tests.helpers import tiny_sweep_dict


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder and fail if Ray is started; returns a sweep-file writer."""
    monkeypatch.chdir(tmp_path)

    def boom(*a, **k):
        raise AssertionError("Ray was started")
    monkeypatch.setattr("hrvs_ray.cluster.ray_io.connect", boom)

    def write(text: str) -> str:
        (tmp_path / "s.yaml").write_text(text)
        return "s.yaml"
    return write


def _rejected(capsys, path: str, tmp_path) -> str:
    """Run ``hrvs-ray sweep`` on ``path``: exit 2, one error line per problem, nothing written."""
    assert main(["sweep", path, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hrvs-ray: error: {path}: ") and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
    return err


def _tiny_yaml(tmp_path, **over) -> str:
    d = tiny_sweep_dict(tmp_path, **over)
    d["dataset"]["path"], d["dataset"]["cache"] = "ds", "cache"
    return yaml.safe_dump(d, sort_keys=False)


def test_input_set_defined_twice_names_both_lines(in_tmp, capsys, tmp_path):
    text = _tiny_yaml(tmp_path).replace("  HR&VS:", "  MR&VS:\n    resize: none\n    batch_size: 2\n  HR&VS:")
    first, second = [n + 1 for n, ln in enumerate(text.splitlines()) if ln == "  MR&VS:"]
    err = _rejected(capsys, in_tmp(text), tmp_path)
    assert f"s.yaml: input_sets.MR&VS: duplicate key 'MR&VS': defined on line {first} and again on line {second}" in err


@pytest.mark.parametrize("text, key, lines", [
    ("name: a\nname: b\n", "name", (1, 2)),
    ("training: {steps: 1, steps: 2}\n", "training.steps", (1, 1)),
])
def test_duplicate_keys_anywhere(tmp_path, text, key, lines):
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(SweepError) as e:
        load_sweep(tmp_path / "s.yaml")
    assert e.value.key == key and f"defined on line {lines[0]} and again on line {lines[1]}" in e.value.problem


def test_merge_keys_may_be_overridden():
    # overriding a merged key is what "<<" is for, not a duplicate
    text = "base: &b {steps: 5, runs: 2}\nuse:\n  <<: *b\n  steps: 3\n"
    assert load_yaml(text, "s.yaml")["use"] == {"steps": 3, "runs": 2}


def _laughs(depth: int = 9) -> str:
    """A billion-laughs value: 10 ** depth strings from a few hundred bytes of YAML."""
    parts = ['&l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    parts += [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, depth)]
    return "[" + ", ".join(parts) + "]"


def test_billion_laughs_under_betas_is_refused_with_a_short_message(in_tmp, capsys, tmp_path):
    path = in_tmp(_tiny_yaml(tmp_path) + f"optimizer:\n  betas: {_laughs()}\n")
    err = _rejected(capsys, path, tmp_path)
    assert "s.yaml: optimizer.betas" in err and f"more than {MAX_NODES:,} YAML values" in err
    assert len(err) < 400


def test_a_large_but_legal_value_is_echoed_as_a_short_preview(tmp_path):
    # a few thousand values: under the size limit, still never echoed in full
    text = _tiny_yaml(tmp_path) + f"optimizer:\n  betas: {_laughs(3)}\n"
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(SweepError) as e:
        load_sweep(tmp_path / "s.yaml")
    assert e.value.key == "optimizer.betas" and len(str(e.value)) < 200


@pytest.mark.parametrize("value, problem", [
    ("&x [1, *x]", "refers to its own anchor"),
    ("[" * 100 + "]" * 100, "levels deep"),
    ("[" * 3000 + "]" * 3000, "levels deep"),
])
@pytest.mark.slow
def test_recursive_and_deep_values_are_refused(in_tmp, capsys, tmp_path, value, problem):
    path = in_tmp(_tiny_yaml(tmp_path) + f"optimizer:\n  betas: {value}\n")
    assert problem in _rejected(capsys, path, tmp_path)


def test_a_huge_file_is_refused_before_parsing(in_tmp, capsys, tmp_path):
    path = in_tmp(_tiny_yaml(tmp_path) + "# " + "x" * (1 << 20) + "\n")
    assert "larger than 1024 KiB" in _rejected(capsys, path, tmp_path)


def test_every_echoed_value_is_cut_to_a_preview(tmp_path):
    d = tiny_sweep_dict(tmp_path)
    d["training"]["steps"] = "x" * 100_000
    with pytest.raises(SweepError) as e:
        parse_sweep(d, "s.yaml")
    assert e.value.key == "training.steps" and len(str(e.value)) < 150 and "..." in str(e.value)
    assert len(preview(list(range(10 ** 6)))) <= 60


def test_a_300_character_name_is_refused_naming_what_it_names(in_tmp, capsys, tmp_path):
    path = in_tmp(_tiny_yaml(tmp_path, name="n" * 300))
    err = _rejected(capsys, path, tmp_path)
    assert "s.yaml: name: must be at most 200 characters" in err and "reports/<name>.html" in err
    assert "has 300" in err and len(err) < 400


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", "a b", "-rf", "é", ""])
def test_names_that_cannot_name_a_folder_are_refused(tmp_path, name):
    with pytest.raises(SweepError) as e:
        parse_sweep(tiny_sweep_dict(tmp_path, name=name), "s.yaml")
    assert e.value.key == "name"


@pytest.mark.parametrize("name", ["quick", "full-2024.v2", "a_b", ".hidden-ok", "n" * 200])
def test_ordinary_names_pass(tmp_path, name):
    assert parse_sweep(tiny_sweep_dict(tmp_path, name=name)).name == name


def test_input_set_and_cluster_names_are_bounded(tmp_path):
    d = tiny_sweep_dict(tmp_path)
    d["input_sets"]["x" * 65] = d["input_sets"].pop("HR&VS")
    with pytest.raises(SweepError, match="at most 64 characters"):
        parse_sweep(d)
    with pytest.raises(SweepError, match=r"clusters\[0\]\.name: must not be empty"):
        parse_sweep(tiny_sweep_dict(tmp_path, clusters=[{"name": " "}]))


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.mkdir(), "is a directory, not a sweep file"),
    (lambda p: None, "file not found"),
    (lambda p: p.write_text("- a\n- b\n"), "must be a mapping, got a list"),
    (lambda p: p.write_text(""), "file is empty"),
    (lambda p: p.write_bytes(b"name: \xff\n"), "cannot read"),
])
def test_paths_and_documents_that_are_not_sweeps(tmp_path, monkeypatch, capsys, make, problem):
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "s.yaml")
    assert main(["sweep", "s.yaml"]) == 2
    err = capsys.readouterr().err
    assert f"s.yaml: {problem}" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()
