"""The scope grammar: ``[R*]cores:N | socket | node``, its text, order and labels."""
from __future__ import annotations

import pytest

from hrvs_ray.scopes import (
    ONE_RANK_HELP,
    SCOPE_HELP,
    Scope,
    parse_scope,
    rank_scope,
    ranks_of,
    scope_key,
    scope_label,
    scope_problem,
)


@pytest.mark.parametrize("text, scope", [
    ("cores:4", Scope("cores", 4)), ("socket", Scope("socket", None)), ("node", Scope("node", None)),
    ("2*cores:1", Scope("cores", 1, ranks=2)), ("4*node", Scope("node", None, ranks=4)),
    ("2*socket", Scope("socket", None, ranks=2)), ("16*cores:12", Scope("cores", 12, ranks=16)),
])
def test_parse_and_text_round_trip(text, scope):
    assert parse_scope(text) == scope
    assert scope.text == text and parse_scope(scope.text) == scope
    assert scope_problem(text) is None


def test_ranks_and_rank_scope():
    assert ranks_of("2*cores:1") == 2 and ranks_of("node") == 1
    assert rank_scope("2*cores:1") == "cores:1" and rank_scope("node") == "node" and rank_scope("4*socket") == "socket"
    assert parse_scope("2*cores:4").rank == Scope("cores", 4)


@pytest.mark.parametrize("bad", ["0*node", "02*node", "*node", "2*", "2*cores:0", "2**node", "2 *node", "2*Node",
                                 "x*node", "2*sockets", "-2*node", "2*cores:1\n"])
def test_malformed_scopes_name_the_grammar(bad):
    assert scope_problem(bad) == SCOPE_HELP
    with pytest.raises(ValueError) as e:
        parse_scope(bad + "!")          # (the parser strips outer blanks; "!" keeps every case bad)
    assert str(e.value) == f"unknown scope {bad + '!'!r}: {SCOPE_HELP}"


def test_one_rank_prefix_is_refused_with_its_own_reason():
    assert scope_problem("1*node") == ONE_RANK_HELP
    with pytest.raises(ValueError, match="for one rank write the scope alone"):
        parse_scope("1*cores:2")


def test_labels():
    assert scope_label("2*cores:1") == "2 × 1 core"
    assert scope_label("4*cores:8") == "4 × 8 cores"
    assert scope_label("2*node") == "2 × node"
    assert scope_label("cores:4") == "4 cores" and scope_label("node") == "node"


def test_single_rank_scopes_first_in_todays_order_then_data_parallel():
    got = sorted(["4*node", "node", "2*cores:1", "bad", "socket", "2*node", "cores:8", "2*socket", "cores:1",
                  "2*cores:4"], key=scope_key)
    assert got == ["cores:1", "cores:8", "socket", "node", "2*cores:1", "2*cores:4", "2*socket", "2*node", "4*node",
                   "bad"]
