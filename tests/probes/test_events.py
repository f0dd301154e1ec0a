"""One grammar for each rule: the LLC event spec and the scope, shared by the sweep validator
and the probes, so a sweep the validator accepts is one the probes understand (and vice versa)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from hrvs_ray import config, scopes
from hrvs_ray.node.topology import read_topology, resolve_scope
from hrvs_ray.probes.events import EVENT_HELP, EventSpecError, parse_llc_event
from tests.helpers import REPO

# Valid (generic, named, raw, upper-case hex, 64 bits) and invalid spellings (wrong case,
# padding, no 0x, no digits, not hex, 65 bits, perf's own names, not a string).
SPECS = ["generic", "ll-read", "none", "raw:0x20d1", "raw:0x20D1", "raw:0x0", "raw:0xFFFFFFFFFFFFFFFF",
         "raw:0x1ffffffffffffffff", "raw:20d1", "raw:0x", "raw:not-hex", "raw:0xg1", "raw: 0x20d1",
         "GENERIC", " generic", "generic ", "generic\n", "raw:0x20d1\n", "", "cache-misses", "LLC-load-misses",
         5, True, None, ["generic"]]
ALWAYS_VALID = {"generic", "ll-read", "none", "raw:0x20d1", "raw:0xFFFFFFFFFFFFFFFF"}
NEVER_VALID = {"raw:0x1ffffffffffffffff", "raw:0x", "raw:not-hex", "", " generic", "generic\n", "raw:0x20d1\n"}


def test_validator_and_counters_use_the_same_scope_grammar():
    assert config.SCOPE_RE is scopes.SCOPE_RE


def _probes_accept(spec: object) -> bool:
    try:
        parse_llc_event(spec)  # type: ignore[arg-type]
    except EventSpecError:
        return False
    return True


def _sweep_dict(top_llc: object = "generic", cluster_llc: object = "generic") -> dict:
    return {"name": "ev", "dataset": {"kind": "synthetic", "path": "/nonexistent/ev"},
            "input_sets": {"a": {"resize": "fixed", "size": [8, 8], "batch_size": 1}}, "scopes": ["node"],
            "counters": {"llc": top_llc},
            "clusters": [{"name": "c0"}, {"name": "c1", "counters": {"llc": cluster_llc}}]}


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@pytest.mark.parametrize("where, key", [("top", "counters.llc"), ("cluster", "clusters[1].counters.llc")])
def test_the_sweep_validator_accepts_exactly_the_events_the_probes_parse(spec, where, key):
    """A sweep the validator passes must be one whose counters open, and a sweep it refuses
    must be one the probes would refuse too: the validator has no grammar of its own."""
    d = _sweep_dict(**{"top_llc" if where == "top" else "cluster_llc": spec})
    probes_ok = _probes_accept(spec)
    if isinstance(spec, str):      # the oracle itself: the unambiguous cases
        assert probes_ok == (spec in ALWAYS_VALID) or spec not in ALWAYS_VALID | NEVER_VALID
    if probes_ok:
        sweep = config.parse_sweep(d, "ev.yaml")
        got = sweep.counters.llc if where == "top" else sweep.clusters[1].counters.llc
        assert got == spec
    else:
        with pytest.raises(config.SweepError) as e:
            config.parse_sweep(d, "ev.yaml")
        assert e.value.key == key and str(e.value).startswith(f"ev.yaml: {key}: ")
        if isinstance(spec, str):      # the events module's own words, not a second copy of them
            assert e.value.problem.startswith(EVENT_HELP)


def test_a_sweep_file_with_a_bad_event_is_refused_naming_file_and_key(tmp_path):
    path = tmp_path / "ev.yaml"
    path.write_text(yaml.safe_dump(_sweep_dict(cluster_llc="raw:0x1ffffffffffffffff")))
    with pytest.raises(config.SweepError, match=re.escape(f"{path}: clusters[1].counters.llc: ")):
        config.load_sweep(path)
    path.write_text(yaml.safe_dump(_sweep_dict(top_llc="raw:0x20D1", cluster_llc="ll-read")))
    sweep = config.load_sweep(path)
    assert (sweep.counters.llc, sweep.clusters[1].counters.llc) == ("raw:0x20D1", "ll-read")


@pytest.mark.parametrize("spec", [s for s in SPECS if isinstance(s, str)], ids=repr)
def test_the_probes_refuse_with_the_grammar_in_words(spec):
    if _probes_accept(spec):
        ev, name = parse_llc_event(spec)
        assert (ev is None) == (name == "none")
    else:
        with pytest.raises(EventSpecError, match=re.escape(f"invalid llc event {spec!r}: {EVENT_HELP}")):
            parse_llc_event(spec)


def test_raw_events_are_recorded_in_one_spelling():
    assert parse_llc_event("raw:0x20D1") == parse_llc_event("raw:0x20d1")
    assert parse_llc_event("raw:0x20d1")[1] == "raw:0x20d1"
    assert parse_llc_event("raw:0xFFFFFFFFFFFFFFFF")[0].config == 2 ** 64 - 1


@pytest.mark.parametrize("scope", ["cores:0", "cores:", "sockets", "Node", "cores:-1"])
def test_a_scope_the_validator_rejects_is_rejected_by_the_mapper_with_the_same_words(scope):
    assert scopes.scope_problem(scope) == scopes.SCOPE_HELP
    with pytest.raises(ValueError, match=re.escape(f"unknown scope {scope!r}: {scopes.SCOPE_HELP}")):
        resolve_scope(read_topology("/"), scope)


def test_grammar_modules_stay_torch_free():
    code = ("import json, sys\nimport hrvs_ray.config, hrvs_ray.probes.events, hrvs_ray.node.placement\n"
            "print(json.dumps(sorted(m for m in ('torch', 'ray') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
