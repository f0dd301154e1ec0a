"""Slug rules: one module, and each rule exactly what its caller used before (results
folders, cache folders and cell ids written earlier must keep their names)."""
from __future__ import annotations

import re

import pytest

from hrvs_ray import names
from hrvs_ray.cluster import nodes
from hrvs_ray.config import InputSetSpec
from hrvs_ray.plan.cells import cell_id
from hrvs_ray.report import html
from hrvs_ray.store import results as store

# The six rules as they were written in each caller at git HEAD 13c6d0a (copied verbatim).
BEFORE = {
    "input_set_key": lambda s: re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower() or "set",       # config
    "id_part": lambda s: "".join(c if c.isalnum() or c in "-_" else "-" for c in s),              # plan.cell_id
    "path_component": lambda s: "".join(c if c.isalnum() or c in "-_." else "-" for c in s) or "-",  # store
    "node_slug": lambda s: re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "unknown",            # nodes
    "html_id": lambda s: "".join(c if c.isalnum() else "-" for c in s.lower()).strip("-"),         # report.html
    "svg_id_prefix": lambda s: re.sub(r"[^A-Za-z0-9-]", "-", s),                                  # report.figures
}
SAMPLES = ["LR&FS", "MR&VS", "HR&VS", "cores:4", "socket", "node", "", "--", "...", "a.b.c", "Ünïcödé 名前",
           "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", "AMD EPYC 7742 64-Core Processor", "mn4",
           "mn4.cores-4.lr-fs.r0.1b876799", "x/../y", "tab\there", "UPPER_lower-9", "  spaced  out  "]


@pytest.mark.parametrize("rule", sorted(BEFORE))
def test_every_rule_is_what_its_caller_did_before(rule):
    fn = getattr(names, rule)
    assert [fn(s) for s in SAMPLES] == [BEFORE[rule](s) for s in SAMPLES]


def test_callers_use_the_shared_rules():
    assert InputSetSpec("LR&FS", "fixed", 1, (2, 2)).key == "lr-fs"
    assert store._safe is names.path_component and nodes._slug is names.node_slug and html.slug is names.html_id
    iset = InputSetSpec("MR&VS", "shorter_side", 32, (500,))
    assert cell_id("Intel(R) Xeon", "cores:4", iset, 0, {}).startswith("Intel-R--Xeon.cores-4.mr-vs.r0.")


def test_examples_a_reader_can_check():
    assert names.node_slug("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz") == "Intel-R-Xeon-R-Gold-6148-CPU-2.40GHz"
    assert names.id_part("cores:4") == "cores-4" and names.path_component("a.b/c") == "a.b-c"
    assert names.html_id("Cores:4") == "cores-4" and names.input_set_key("&&") == "set"
