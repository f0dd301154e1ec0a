from __future__ import annotations

import subprocess
import sys

import pytest

from hrvs_ray.config import SweepError, load_sweep, parse_sweep
from conftest import REPO, tiny_sweep_dict


@pytest.mark.parametrize("name", ["full", "quick", "smoke"])
def test_shipped_sweeps_validate(name):
    s = load_sweep(REPO / "sweeps" / f"{name}.yaml")
    assert [i.name for i in s.input_sets] == ["LR&FS", "MR&VS", "HR&VS"]


def test_full_sweep_is_the_papers_setup():
    s = load_sweep(REPO / "sweeps" / "full.yaml")
    lr, mr, hr = s.input_sets
    assert (lr.resize, lr.size, lr.batch_size) == ("fixed", (256, 256), 1024)
    assert (mr.resize, mr.size, mr.batch_size) == ("shorter_side", (500,), 32)
    assert (hr.resize, hr.size, hr.batch_size) == ("none", (), 4)
    assert s.dataset.kind == "mame" and s.dataset.subset == "train"
    assert (s.model.arch, s.model.num_classes) == ("resnet18", 29)
    assert (s.optimizer.name, s.optimizer.lr, s.optimizer.betas, s.optimizer.weight_decay) == \
        ("adam", 1e-4, (0.9, 0.999), 0.0)
    assert (s.training.steps, s.training.runs) == (10, 3)
    assert s.scopes == ("cores:4", "socket", "node")


@pytest.mark.parametrize("mutate, key, problem", [
    (lambda d: d.update(bogus=1), "bogus", "unknown key"),
    (lambda d: d["input_sets"]["MR&VS"].update(batch_size="32"), "input_sets.MR&VS.batch_size", "must be an integer"),
    (lambda d: d["input_sets"]["MR&VS"].update(batch_size=0), "input_sets.MR&VS.batch_size", "must be > 0"),
    (lambda d: d["input_sets"]["LR&FS"].update(size=[256]), "input_sets.LR&FS.size", "[height, width]"),
    (lambda d: d["input_sets"]["HR&VS"].update(size=5), "input_sets.HR&VS.size", "not allowed"),
    (lambda d: d["training"].update(steps=-1), "training.steps", "must be > 0"),
    (lambda d: d["training"].update(seed=True), "training.seed", "boolean"),
    (lambda d: d.update(scopes=["cores:0"]), "scopes[0]", "cores:N"),
    (lambda d: d.update(scopes=["node", "node"]), "scopes[1]", "duplicate"),
    (lambda d: d["dataset"].update(kind="imagenet"), "dataset.kind", "must be one of"),
    (lambda d: d.update(optimizer={"betas": [0.9, 1.5]}), "optimizer.betas", "two numbers"),
    (lambda d: d.update(clusters=[{"name": "a", "counters": {"llc": "0x20d1"}}]), "clusters[0].counters.llc", "raw:0x"),
    (lambda d: d.pop("scopes"), "scopes", "missing required key"),
])
def test_bad_values_name_key_and_problem(tmp_path, mutate, key, problem):
    d = tiny_sweep_dict(tmp_path)
    mutate(d)
    with pytest.raises(SweepError) as e:
        parse_sweep(d, "x.yaml")
    assert e.value.key == key
    assert problem in e.value.problem
    assert str(e.value).startswith(f"x.yaml: {key}: ")


def test_yaml_syntax_error_names_line(write_sweep):
    p = write_sweep("name: x\ninput_sets: {a: [\n")
    with pytest.raises(SweepError, match=r"not valid YAML: line \d+"):
        load_sweep(p)


def test_fingerprint_ignores_execution_knobs(tmp_path):
    a = parse_sweep(tiny_sweep_dict(tmp_path))
    b = parse_sweep(tiny_sweep_dict(tmp_path, execution={"retries": 0}))
    c = parse_sweep(tiny_sweep_dict(tmp_path, training={"steps": 3}))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_cli_bad_sweep_exits_2_and_runs_nothing(write_sweep, tmp_path):
    d = tiny_sweep_dict(tmp_path)
    d["input_sets"]["HR&VS"]["batch_size"] = -4
    p = write_sweep(d)
    out = tmp_path / "results"
    r = subprocess.run([sys.executable, "-m", "hrvs_ray.cli", "sweep", str(p), "--out", str(out)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 2
    assert f"{p}: input_sets.HR&VS.batch_size: must be > 0" in r.stderr
    assert not out.exists() and not (tmp_path / "ds").exists()
