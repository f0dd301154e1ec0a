"""The sweep file's ``remedies:`` section: axes, their parameters, the older model keys."""
from __future__ import annotations

import pytest

from hrvs_ray.config import ModelSpec, RemediesSpec, SweepError, load_sweep, parse_sweep
from hrvs_ray.config.remedies_section import remedy_problem
from tests.helpers import REPO, tiny_sweep_dict


def _parse(tmp_path, remedies=None, model=None):
    over = {}
    if remedies is not None:
        over["remedies"] = remedies
    if model is not None:
        over["model"] = model
    return parse_sweep(tiny_sweep_dict(tmp_path, **over), "x.yaml")


def _error(tmp_path, remedies=None, model=None) -> SweepError:
    with pytest.raises(SweepError) as e:
        _parse(tmp_path, remedies, model)
    return e.value


def test_no_section_is_the_papers_setup(tmp_path):
    r = _parse(tmp_path).remedies
    assert r == RemediesSpec() and r.is_default


def test_one_value_or_a_list_per_axis_in_the_order_given(tmp_path):
    r = _parse(tmp_path, {"batching": ["bucket", "pad", "accumulate"], "precision": "bfloat16",
                          "memory_format": ["channels_last", "contiguous"], "checkpointing": ["none", "stages"],
                          "window": 8, "micro_batch": 2}).remedies
    assert r == RemediesSpec(("bucket", "pad", "accumulate"), ("bfloat16",), ("channels_last", "contiguous"),
                             ("none", "stages"), window=8, micro_batch=2)
    assert len(r.combinations()) == 3 * 1 * 2 * 2


@pytest.mark.parametrize("remedies, key, problem", [
    ({"precision": ["float32", "fp16"]}, "remedies.precision[1]", "must be one of float32, bfloat16, got 'fp16'"),
    ({"precision": "fp16"}, "remedies.precision", "must be one of float32, bfloat16, got 'fp16'"),
    ({"batching": ["pad", "pad"]}, "remedies.batching[1]", "duplicate value 'pad'"),
    ({"memory_format": []}, "remedies.memory_format", "non-empty list"),
    ({"checkpointing": [True]}, "remedies.checkpointing[0]", "must be a string, got a boolean"),
    ({"batching": "bucket", "window": 0}, "remedies.window", "must be >= 1"),
    ({"window": 8}, "remedies.window", "only used with batching: bucket"),
    ({"micro_batch": 2}, "remedies.micro_batch", "only used with batching: accumulate"),
    ({"batching": "accumulate", "micro_batch": 3}, "remedies.micro_batch",
     "3 exceeds the batch_size 2 of input set 'MR&VS'"),
    ({"speed": "max"}, "remedies.speed", "unknown key"),
    (["pad"], "remedies", "must be a mapping"),
])
def test_bad_remedies_name_key_and_problem(tmp_path, remedies, key, problem):
    e = _error(tmp_path, remedies)
    assert (e.key, str(e)) == (key, f"x.yaml: {key}: {e.problem}") and problem in e.problem


def test_model_keys_set_the_default_of_an_axis_remedies_does_not_list(tmp_path):
    r = _parse(tmp_path, {"batching": "bucket"}, {"precision": "bfloat16", "memory_format": "channels_last"}).remedies
    assert (r.batching, r.precision, r.memory_format) == (("bucket",), ("bfloat16",), ("channels_last",))


def test_model_and_remedies_may_agree_but_not_disagree(tmp_path):
    assert _parse(tmp_path, {"precision": "bfloat16"}, {"precision": "bfloat16"}).remedies.precision == ("bfloat16",)
    e = _error(tmp_path, {"precision": ["float32", "bfloat16"]}, {"precision": "float32"})
    assert e.key == "model.precision" and "set it in remedies.precision only" in e.problem
    e = _error(tmp_path, {"memory_format": "channels_last"}, {"memory_format": "contiguous"})
    assert e.key == "model.memory_format"


def test_what_the_model_cannot_do_is_refused():
    resnet, other = ModelSpec(), ModelSpec(arch="vgg16")
    assert remedy_problem("checkpointing", "stages", resnet) is None
    assert "has none" in remedy_problem("checkpointing", "stages", other)
    assert remedy_problem("checkpointing", "none", other) is None
    # every axis value runs on a GPU
    cuda = ModelSpec(device="cuda")
    assert all(remedy_problem(a, v, cuda) is None for a, vs in
               [("precision", ("float32", "bfloat16")), ("memory_format", ("contiguous", "channels_last")),
                ("checkpointing", ("none", "stages"))] for v in vs)


def test_fingerprint_unchanged_by_a_section_that_says_the_default(tmp_path):
    base = _parse(tmp_path).fingerprint()
    assert _parse(tmp_path, {"batching": "pad", "precision": ["float32"],
                             "checkpointing": "none"}).fingerprint() == base
    assert _parse(tmp_path, {"batching": "bucket"}).fingerprint() != base
    assert _parse(tmp_path, {"precision": "bfloat16"}).fingerprint() != base
    # An old file asking for bfloat16 + channels_last through the model keys keeps the
    # fingerprint that git HEAD 13c6d0a's config.py computed for it (run in a scratch copy).
    old = _parse(tmp_path, model={"precision": "bfloat16", "memory_format": "channels_last"})
    assert (base, old.fingerprint()) == ("3e7d35cff15a8a94", "aa73ec322b9d78cd")
    again = _parse(tmp_path, {"precision": "bfloat16"}, {"precision": "bfloat16", "memory_format": "channels_last"})
    assert again.fingerprint() == old.fingerprint()


def test_fingerprint_follows_the_parameters_a_policy_uses(tmp_path):
    a = _parse(tmp_path, {"batching": ["pad", "bucket"], "window": 8}).fingerprint()
    b = _parse(tmp_path, {"batching": ["pad", "bucket"], "window": 16}).fingerprint()
    assert a != b


def test_plan_version_enters_the_fingerprint_only_where_batches_changed(tmp_path):
    from hrvs_ray import remedy_axes
    assert _parse(tmp_path, {"batching": ["pad", "bucket"], "window": 8}).plan_version == remedy_axes.PLAN_VERSION == 2
    assert _parse(tmp_path, {"batching": ["pad", "accumulate"]}).plan_version == 1
    # Fingerprints git HEAD b182d38 (plan version 1) computed for the shipped files, in a
    # scratch copy: the sweeps with bucket change (their bucket cells train on other
    # images now), the others keep theirs and still resume.
    before = {"quick-remedies": "d0113db4780245f5", "remedies": "01e33a7e2ebd159f",
              "quick": "12b8a3d7a4341059", "smoke": "e82f77c4bb564287"}
    now = {n: load_sweep(REPO / "sweeps" / f"{n}.yaml").fingerprint() for n in before}
    assert [n for n in before if now[n] != before[n]] == ["quick-remedies", "remedies"]


def test_split_is_an_opt_in_axis(tmp_path):
    assert _parse(tmp_path).remedies.split == ("shard",)
    r = _parse(tmp_path, {"split": ["shard", "balanced", "uniform"]}).remedies
    assert r.split == ("shard", "balanced", "uniform")
    assert [c.split for c in r.combinations()] == ["shard", "balanced", "uniform"]
    assert [c.split for c in r.combinations(ranks=2)] == ["shard", "balanced", "uniform"]
    assert [c.split for c in r.combinations(ranks=1)] == ["shard"]   # one rank: nothing to split, one cell
    only = _parse(tmp_path, {"split": "balanced", "batching": ["pad", "bucket"]}).remedies
    assert [(c.batching, c.split) for c in only.combinations(ranks=1)] == [("pad", "shard"), ("bucket", "shard")]


@pytest.mark.parametrize("remedies, key, problem", [
    ({"split": "even"}, "remedies.split", "must be one of shard, balanced, uniform, got 'even'"),
    ({"split": ["shard", "shard"]}, "remedies.split[1]", "duplicate value 'shard'"),
    ({"split": []}, "remedies.split", "non-empty list"),
])
def test_bad_split_names_key_and_problem(tmp_path, remedies, key, problem):
    e = _error(tmp_path, remedies)
    assert e.key == key and problem in e.problem


def test_split_enters_ids_labels_and_fingerprints_only_when_used(tmp_path):
    from hrvs_ray.remedy_axes import PAPER, Remedy
    assert Remedy(split="balanced").label == "pad+fp32+nchw+split-balanced"
    assert Remedy(split="shard").label == PAPER.label and Remedy(split="shard").id_params() == {}
    assert Remedy(split="uniform").id_params()["split"] == "uniform"
    assert Remedy.from_row(Remedy(split="uniform").to_row()) == Remedy(split="uniform")
    assert Remedy.from_row({k: v for k, v in PAPER.to_row().items() if k != "split"}) == PAPER
    base = _parse(tmp_path)
    listed = _parse(tmp_path, {"split": "shard"})
    assert base.fingerprint() == listed.fingerprint()
    assert _parse(tmp_path, {"split": ["shard", "balanced"]}).fingerprint() != base.fingerprint()
