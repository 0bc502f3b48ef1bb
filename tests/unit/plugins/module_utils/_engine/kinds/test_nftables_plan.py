"""Table-driven tests of the nftables kind's pure parts: validation, braces, the JSON listing's
normalisation and split, the plan of a namespace's tables, the transaction and the undo buffer."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.nftables import (
    NftablesParams,
    action_of,
    braces_balanced,
    nftables_spec,
    normalise,
    plan_tables,
    restore_json,
    split_tables,
    transaction,
)

CHAIN = {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter",
                   "hook": "input", "prio": 0, "policy": "drop"}}
RULE = {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4,
                 "expr": [{"counter": {"packets": 12, "bytes": 840}}, {"accept": None}]}}


@pytest.mark.parametrize("text,balanced", [
    ("", True),
    ("chain c { }", True),
    ("chain c { type filter hook input priority 0; }\nset s { type ipv4_addr; }", True),
    ("}", False),
    ("chain c {", False),
    ("} table ip x {", False),
    ('chain c { comment "}"; }', True),
    ("chain c { } # }", True),
    ("chain c { # {\n}", True),
    ('chain c { comment "{; }', False),
])
def test_braces(text: str, balanced: bool) -> None:
    assert braces_balanced(text) is balanced


@pytest.mark.parametrize("items,field,words", [
    ([{"family": "ipx", "table": "t", "definition": ""}], "x[0].family", "must be one of"),
    ([{"table": "9t", "definition": ""}], "x[0].table", "must match"),
    ([{"table": "t-1", "definition": ""}], "x[0].table", "must match"),
    ([{"table": "t"}], "x[0].definition", "text inside"),
    ([{"table": "t", "definition": "a\0b"}], "x[0].definition", "at most"),
    ([{"table": "t", "definition": "include \"/etc/x\""}], "x[0].definition", "include"),
    ([{"table": "t", "definition": "chain c {\n  include \"/etc/x\"\n}"}], "x[0].definition", "include"),
    ([{"table": "t", "definition": "}"}], "x[0].definition", "unbalanced"),
    ([{"table": "t", "definition": "", "hook": 1}], "x[0]", "unknown key(s) hook"),
    (["t"], "x[0]", "must be a mapping"),
    ([{"table": "t", "definition": ""}, {"family": "inet", "table": "t", "definition": ""}], "x[1].table", "twice"),
    ({"table": "t"}, "x", "must be a list"),
])
def test_spec_refuses(items: Any, field: str, words: str) -> None:
    with pytest.raises(NetnsError) as caught:
        nftables_spec("ns", items, "x")
    assert caught.value.obj == field and words in caught.value.message


def test_spec_defaults_to_inet_and_keeps_the_same_name_in_two_families() -> None:
    spec = nftables_spec(None, [{"table": "t", "definition": ""}, {"family": "ip", "table": "t", "definition": ""}])
    assert [t.key for t in spec.tables] == [("inet", "t"), ("ip", "t")]
    assert spec.netns is None and spec.tables[0].text() == "table inet t {\n\n}\n"


def test_normalise_drops_handles_and_running_counters() -> None:
    assert normalise(RULE) == {"rule": {"family": "inet", "table": "filter", "chain": "input",
                                        "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"accept": None}]}}
    named = {"counter": {"family": "inet", "table": "filter", "name": "c", "handle": 3, "packets": 5, "bytes": 9}}
    assert normalise(named) == {"counter": {"family": "inet", "table": "filter", "name": "c", "packets": 0, "bytes": 0}}
    quota = {"quota": {"family": "ip", "table": "q", "name": "q", "bytes": 100, "used": 7, "inv": False}}
    assert normalise(quota)["quota"]["used"] == 0


def test_split_tables_groups_by_family_and_name() -> None:
    listing = [{"table": {"family": "inet", "name": "filter", "handle": 1}}, CHAIN, RULE,
               {"table": {"family": "ip", "name": "filter", "handle": 2}}, {}]
    tables = split_tables(listing)
    assert sorted(tables) == [("inet", "filter"), ("ip", "filter")]
    assert [next(iter(item)) for item in tables[("inet", "filter")]] == ["table", "chain", "rule"]
    assert tables[("ip", "filter")] == [{"table": {"family": "ip", "name": "filter"}}]


A = [{"table": {"family": "inet", "name": "a"}}]
A2 = A + [{"chain": {"family": "inet", "table": "a", "name": "c"}}]
B = [{"table": {"family": "ip", "name": "b"}}]


@pytest.mark.parametrize("state,current,wanted,before,after,action", [
    ("present", {}, {("inet", "a"): A}, {"inet a": None}, {"inet a": A}, "create"),
    ("present", {("inet", "a"): A}, {("inet", "a"): A}, {}, {}, None),
    ("present", {("inet", "a"): A}, {("inet", "a"): A2}, {"inet a": A}, {"inet a": A2}, "update"),
    ("present", {("inet", "a"): A, ("ip", "b"): B}, {("inet", "a"): A2}, {"inet a": A}, {"inet a": A2}, "update"),
    ("absent", {("inet", "a"): A, ("ip", "b"): B}, {}, {"inet a": A}, {"inet a": None}, "delete"),
    ("absent", {("ip", "b"): B}, {}, {}, {}, None),
])
def test_plan_tables(state: str, current: Dict[Any, Any], wanted: Dict[Any, Any], before: Dict[str, Any],
                     after: Dict[str, Any], action: Optional[str]) -> None:
    spec = nftables_spec("ns", [{"table": "a", "definition": ""}], state=state)
    planned = plan_tables(spec, current, wanted)
    assert planned == (before, after)
    if action is not None:
        assert action_of(*planned) == action


def test_action_of_a_mix_is_update() -> None:
    assert action_of({"inet a": None, "ip b": B}, {"inet a": A, "ip b": None}) == "update"


def test_transaction_empties_each_table_first_even_a_missing_one() -> None:
    spec = nftables_spec("ns", [{"table": "a", "definition": "chain c {\n}"}])
    assert transaction(NftablesParams("ns", spec.tables, "present")) == (
        "add table inet a\ndelete table inet a\ntable inet a {\nchain c {\n}\n}\n")
    assert transaction(NftablesParams("ns", spec.tables, "absent")) == "add table inet a\ndelete table inet a\n"


def test_transaction_in_a_namespace_this_run_makes_only_makes_the_tables() -> None:
    spec = nftables_spec("ns", [{"table": "a", "definition": "chain c {\n}"}])
    assert transaction(NftablesParams("ns", spec.tables, "present", fresh=True)) == "table inet a {\nchain c {\n}\n}\n"


def test_restore_json_brings_back_what_was_listed() -> None:
    commands: List[Dict[str, Any]] = json.loads(restore_json({("inet", "a"): A2, ("ip", "b"): None}))["nftables"]
    assert commands == [{"add": {"table": {"family": "inet", "name": "a"}}},
                        {"delete": {"table": {"family": "inet", "name": "a"}}},
                        {"add": A2[0]}, {"add": A2[1]},
                        {"add": {"table": {"family": "ip", "name": "b"}}},
                        {"delete": {"table": {"family": "ip", "name": "b"}}}]
