from __future__ import annotations

import json

import pytest

from hrvs_ray.config import Sweep, SweepError, load_sweep, parse_sweep
from hrvs_ray.store.migrate import upgrade_definition
from tests.helpers import REPO, hrvs, tiny_sweep_dict


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
    (lambda d: d.update(scopes=["node", "2*cores:0"]), "scopes[1]", "'R*' (R >= 2)"),
    (lambda d: d.update(scopes=["1*node"]), "scopes[0]", "for one rank write the scope alone"),
    (lambda d: d.update(scopes=["2*node", "2*node"]), "scopes[1]", "duplicate"),
    (lambda d: d.update(clusters=[{"name": "a", "scopes": ["0*socket"]}]), "clusters[0].scopes[0]", "'R*'"),
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
    r = hrvs("sweep", str(p), "--out", str(out), cwd=tmp_path, timeout=60)  # on this checkout (cli_env)
    assert r.returncode == 2
    assert f"{p}: input_sets.HR&VS.batch_size: must be > 0" in r.stderr
    assert not out.exists() and not (tmp_path / "ds").exists()


# Computed with the config.py of git HEAD 13c6d0a (before the remedies axes existed), by
# loading these files with `git show HEAD:hrvs_ray/config/__init__.py` in a scratch package: a sweep
# without a remedies section must keep its fingerprint, or its results folder stops resuming.
FINGERPRINTS_BEFORE_REMEDIES = {"quick": "12b8a3d7a4341059", "full": "13b53e6f2af4fb45", "smoke": "e82f77c4bb564287"}


@pytest.mark.parametrize("name", sorted(FINGERPRINTS_BEFORE_REMEDIES))
def test_fingerprint_of_shipped_sweeps_is_unchanged(name):
    assert load_sweep(REPO / "sweeps" / f"{name}.yaml").fingerprint() == FINGERPRINTS_BEFORE_REMEDIES[name]


@pytest.mark.parametrize("over", [{}, {"remedies": {"batching": ["pad", "bucket"], "precision": ["float32", "bfloat16"],
                                                    "window": 8}},
                                  {"clusters": [{"name": "a", "scopes": ["node"], "counters": {"llc": "none"}},
                                                {"name": "b", "cpu_model": "Xeon"}]}])
def test_to_dict_round_trips_through_json(tmp_path, over):
    s = parse_sweep(tiny_sweep_dict(tmp_path, **over), "x.yaml")
    back = Sweep.from_dict(json.loads(json.dumps(s.to_dict(), default=list)), "x.yaml")
    assert back == s and back.fingerprint() == s.fingerprint()


def test_a_definition_written_before_remedies_reads_back_with_the_implied_axes(tmp_path):
    s = parse_sweep(tiny_sweep_dict(tmp_path, model={"precision": "bfloat16"}))
    d = json.loads(json.dumps(s.to_dict(), default=list))
    d.pop("remedies")
    assert Sweep.from_dict(upgrade_definition(d), s.source) == s and s.remedies.precision == ("bfloat16",)
