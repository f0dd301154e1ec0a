"""One grammar for each rule: the LLC event spec and the scope, shared by the sweep validator
and the probes, so a sweep the validator accepts is one the probes understand (and vice versa)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from hrvs_ray import config, scopes
from hrvs_ray.probes import events
from hrvs_ray.probes.events import EVENT_HELP, EventSpecError, llc_event_problem, parse_llc_event
from hrvs_ray.node.topology import read_topology, resolve_scope

SPECS = ["generic", "ll-read", "none", "raw:0x20d1", "raw:0xFFFFFFFFFFFFFFFF", "raw:0x1ffffffffffffffff",
         "raw:20d1", "raw:0x", "raw:not-hex", "GENERIC", " generic", "", "cache-misses"]


def test_validator_and_counters_use_the_same_scope_grammar():
    assert config.SCOPE_RE is scopes.SCOPE_RE


@pytest.mark.parametrize("spec", SPECS)
def test_accepted_by_the_validator_iff_the_counters_parse_it(spec, tmp_path):
    """The sweep validator, at both places a sweep names an event, accepts exactly the specs
    the counters can open, and names the key when it refuses."""
    from conftest import tiny_sweep_dict
    for over, key in (({"counters": {"llc": spec}}, "counters.llc"),
                      ({"clusters": [{"name": "a", "counters": {"llc": spec}}]}, "clusters[0].counters.llc")):
        try:
            config.parse_sweep(tiny_sweep_dict(tmp_path, **over), "s.yaml")
            accepted = True
        except config.SweepError as e:
            accepted = False
            assert f"s.yaml: {key}:" in str(e)
        assert (llc_event_problem(spec) is None) == accepted
    if accepted:
        ev, name = parse_llc_event(spec)
        assert name == "none" if spec == "none" else ev is not None
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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=os.getcwd(),
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
