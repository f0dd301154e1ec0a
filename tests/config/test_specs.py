"""``Sweep.fingerprint`` and ``Sweep.to_dict`` / ``from_dict``: the identity a results folder
is checked against, and the definition ``sweep.json`` stores."""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from hrvs_ray.config import Sweep, implied_remedies, load_sweep, parse_sweep
from hrvs_ray.store.migrate import upgrade_definition
from tests.helpers import REPO

SWEEPS = sorted(REPO.glob("sweeps/*.yaml"))

BASE = {
    "name": "fp",
    "dataset": {"kind": "synthetic", "path": "data/fp", "subset": "train",
                "synthetic": {"count": 40, "scale": 0.05, "seed": 1, "quality": 80}, "cache": ".cache-a"},
    "input_sets": {"LR&FS": {"resize": "fixed", "size": [32, 32], "batch_size": 4},
                   "HR&VS": {"resize": "none", "batch_size": 2}},
    "model": {"arch": "resnet18", "num_classes": 29},
    "optimizer": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 0.0},
    "training": {"warmup_steps": 1, "steps": 3, "runs": 2, "seed": 7},
    "scopes": ["node", "cores:1"],
    "counters": {"llc": "generic"},
    "clusters": [{"name": "a", "scopes": ["node"], "counters": {"llc": "raw:0x20d1"}}, {"name": "b"}],
    "execution": {"exclusive": True, "cell_timeout_s": 600, "retries": 1, "memory_headroom": 0.9},
}


def _fp(**edits) -> str:
    """The fingerprint of BASE with ``edits`` ({"a.b": value}; value None deletes the key)."""
    d = copy.deepcopy(BASE)
    for path, value in edits.items():
        *parents, last = path.split(".")
        node = d
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return parse_sweep(d, "fp.yaml").fingerprint()


def test_the_fingerprint_is_pinned():
    """Results folders on disk carry this value: a refactor that changes the recipe would make
    every existing folder refuse to resume ("different sweep definition")."""
    assert _fp() == "14fba254be003150"   # the same before the restructure (b182d38)


def test_the_fingerprint_is_a_pure_function_of_the_definition():
    assert _fp() == _fp()
    assert parse_sweep(copy.deepcopy(BASE), "other-file.yaml").fingerprint() == _fp()
    reordered = dict(reversed(list(copy.deepcopy(BASE).items())))
    assert parse_sweep(reordered, "fp.yaml").fingerprint() == _fp()


# every edit changes what a cell runs or measures, or which cells there are
CHANGES = {
    "name": {"name": "fp2"},
    "dataset kind": {"dataset.kind": "mame", "dataset.synthetic": None},
    "subset": {"dataset.subset": "test"},
    "synthetic count": {"dataset.synthetic.count": 41},
    "synthetic scale": {"dataset.synthetic.scale": 0.06},
    "synthetic seed": {"dataset.synthetic.seed": 2},
    "synthetic quality": {"dataset.synthetic.quality": 81},
    "input set size": {"input_sets.LR&FS.size": [32, 33]},
    "input set batch": {"input_sets.LR&FS.batch_size": 5},
    "input set resize": {"input_sets.HR&VS.resize": "shorter_side", "input_sets.HR&VS.size": 64},
    "input set name": {"input_sets.HR&VS": None, "input_sets.XR": {"resize": "none", "batch_size": 2}},
    "device": {"model.device": "cuda"},
    "classes": {"model.num_classes": 30},
    "precision": {"model.precision": "bfloat16"},
    "memory format": {"model.memory_format": "channels_last"},
    "lr": {"optimizer.lr": 2e-4},
    "betas": {"optimizer.betas": [0.8, 0.999]},
    "weight decay": {"optimizer.weight_decay": 0.01},
    "warm-up": {"training.warmup_steps": 2},
    "steps": {"training.steps": 4},
    "runs": {"training.runs": 3},
    "seed": {"training.seed": 8},
    "scopes": {"scopes": ["node"]},
    "scope order": {"scopes": ["cores:1", "node"]},
    "llc event": {"counters.llc": "ll-read"},
    "cluster llc event": {"clusters.0.counters.llc": "none"},
    "cluster scopes": {"clusters.0.scopes": ["cores:1"]},
    "cluster added": {"clusters": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
    "cluster label": {"clusters.1.label": "other"},
    "batching": {"remedies": {"batching": ["pad", "bucket"]}},
    "bucket window": {"remedies": {"batching": ["bucket"], "window": 8}},
    "checkpointing": {"remedies": {"checkpointing": ["none", "stages"]}},
}


@pytest.mark.parametrize("what", CHANGES)
def test_the_fingerprint_changes_with_what_runs(what):
    assert _fp(**CHANGES[what]) != _fp(), what


def test_every_change_gives_its_own_fingerprint():
    fps = [_fp(**edits) for edits in CHANGES.values()]
    assert len(set(fps)) == len(fps)


@pytest.mark.parametrize("edits", [
    {"dataset.path": "/elsewhere/fp"},
    {"dataset.cache": "/tmp/other-cache"},
    {"dataset.cache": None},
    {"execution": {"exclusive": False, "cell_timeout_s": 5, "retries": 3, "memory_headroom": 0.5,
                   "release_heap": True}},
    {"execution": None},
    {"remedies": {"precision": ["float32"]}},          # spelled out, same as implied
], ids=["path", "cache", "cache default", "execution", "no execution", "implied remedies"])
def test_the_fingerprint_ignores_where_and_how_not_what(edits):
    assert _fp(**edits) == _fp()


def test_unused_policy_parameters_do_not_count():
    s = parse_sweep(copy.deepcopy(BASE), "fp.yaml")
    assert replace(s, remedies=replace(s.remedies, window=8, micro_batch=2)).fingerprint() == s.fingerprint()
    b = parse_sweep(dict(copy.deepcopy(BASE), remedies={"batching": ["bucket"]}), "fp.yaml")
    assert replace(b, remedies=replace(b.remedies, micro_batch=2)).fingerprint() == b.fingerprint()
    assert replace(b, remedies=replace(b.remedies, window=8)).fingerprint() != b.fingerprint()


def test_a_schema_1_definition_reads_back_as_the_sweep_it_ran():
    """sweep.json written before the remedies axes has no ``remedies``: upgraded, it is the
    sweep its model keys implied, with the fingerprint its results folder carries."""
    d0 = copy.deepcopy(BASE)
    d0["model"] = {"arch": "resnet18", "num_classes": 29, "precision": "bfloat16"}
    s = parse_sweep(d0, "fp.yaml")
    assert s.remedies == implied_remedies(s.model)
    d = json.loads(json.dumps(s.to_dict(), default=list))
    del d["remedies"]
    old = Sweep.from_dict(upgrade_definition(d), source="fp.yaml")
    assert old == s and old.fingerprint() == s.fingerprint()
    assert old.remedies.precision == ("bfloat16",)


def _json_round_trip(s: Sweep) -> Sweep:
    return Sweep.from_dict(json.loads(json.dumps(s.to_dict(), default=list)), source=s.source)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_shipped_sweeps_round_trip_through_sweep_json(path):
    s = load_sweep(path)
    assert "source" not in s.to_dict()
    back = _json_round_trip(s)
    assert back == s and back.fingerprint() == s.fingerprint()
    assert Sweep.from_dict(s.to_dict(), source=s.source) == s


def test_every_section_round_trips():
    d = copy.deepcopy(BASE)
    d["remedies"] = {"batching": ["pad", "bucket", "accumulate"], "precision": ["float32", "bfloat16"],
                     "window": 4, "micro_batch": 2}
    s = parse_sweep(d, "fp.yaml")
    back = _json_round_trip(s)
    assert back == s and back.fingerprint() == s.fingerprint()
    assert back.clusters[0].scopes == ("node",) and back.clusters[1].scopes is None
    assert back.clusters[0].counters.llc == "raw:0x20d1" and back.clusters[1].counters is None
    assert back.dataset.synthetic == s.dataset.synthetic and back.optimizer.betas == (0.9, 0.999)
    assert back.input_sets[0].size == (32, 32) and back.remedies.window == 4
    assert Sweep.from_dict(s.to_dict(), source="x").source == "x"
