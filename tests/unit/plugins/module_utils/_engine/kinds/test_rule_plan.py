"""Table-driven tests of the policy routing rules' validation and pure planner."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.rule import (
    Rule,
    deleted_by,
    parse_rule,
    plan_rule_set,
    rule_spec,
)
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology


def rule(other: bool = False, **kw: Any) -> Rule:
    """A rule as the kernel reports it (``other``: with a selector the engine does not declare)."""
    return dataclasses.replace(parse_rule(kw, "r"), other=other)


SRC = {"priority": 1000, "from": "10.1.0.0/24"}


@pytest.mark.parametrize("item,expected", [
    (dict(SRC, table=100), (4, 1000, 100, "10.1.0.0/24", None, None, None, None, None)),
    ({"priority": 5, "to": "fd00::/64"}, (6, 5, 254, None, "fd00::/64", None, None, None, None)),
    ({"priority": 5, "family": "inet6", "table": "main"}, (6, 5, 254, None, None, None, None, None, None)),
    ({"priority": 5}, (4, 5, 254, None, None, None, None, None, None)),
    ({"priority": 5, "fwmark": "0x1", "table": 7}, (4, 5, 7, None, None, None, None, 1, 0xFFFFFFFF)),
    ({"priority": 5, "fwmark": 16, "fwmask": "0xf0"}, (4, 5, 254, None, None, None, None, 16, 0xF0)),
    ({"priority": 5, "fwmark": 0, "fwmask": 0xFF}, (4, 5, 254, None, None, None, None, 0, 0xFF)),
    ({"priority": 5, "from": "10.0.0.7", "iif": "lo", "oif": "e0"}, (4, 5, 254, "10.0.0.7/32", None, "lo", "e0", None, None)),
    ({"priority": 32765, "from": "0.0.0.0/0", "table": 4294967295}, (4, 32765, 4294967295, None, None, None, None, None, None)),
])
def test_parse_rule(item: Dict[str, Any], expected: tuple) -> None:
    parsed = parse_rule(item, "rules[0]")
    assert (parsed.family, parsed.priority, parsed.table, None if parsed.src is None else str(parsed.src),
            None if parsed.dst is None else str(parsed.dst), parsed.iif, parsed.oif, parsed.fwmark, parsed.fwmask) == expected


@pytest.mark.parametrize("item,field,words", [
    ({"from": "10.1.0.0/24"}, "rules[0].priority", "needs its priority"),
    ({"priority": 0}, "rules[0].priority", "kernel's default"),
    ({"priority": 32766}, "rules[0].priority", "1..32765"),
    ({"priority": 32767}, "rules[0].priority", "1..32765"),
    ({"priority": True}, "rules[0].priority", "integer"),
    ({"priority": "1000"}, "rules[0].priority", "integer"),
    ({"priority": 1, "table": "local"}, "rules[0].table", "main or a number"),
    ({"priority": 1, "table": 0}, "rules[0].table", "main or a number"),
    ({"priority": 1, "table": 2 ** 32}, "rules[0].table", "main or a number"),
    ({"priority": 1, "table": "100"}, "rules[0].table", "main or a number"),
    ({"priority": 1, "from": "10.1.0.1/24"}, "rules[0].from", "host bits"),
    ({"priority": 1, "to": "nowhere"}, "rules[0].to", "not an address"),
    ({"priority": 1, "from": 7}, "rules[0].from", "not an address"),
    ({"priority": 1, "from": "10.0.0.0/8", "to": "fd00::/8"}, "rules[0].to", "different families"),
    ({"priority": 1, "from": "10.0.0.0/8", "family": "inet6"}, "rules[0].family", "does not match"),
    ({"priority": 1, "family": "ipv4"}, "rules[0].family", "inet or inet6"),
    ({"priority": 1, "iif": "x" * 16}, "rules[0].iif", "at most 15"),
    ({"priority": 1, "oif": "a/b"}, "rules[0].oif", ""),
    ({"priority": 1, "fwmark": "0x1g"}, "rules[0].fwmark", "fwmark must be"),
    ({"priority": 1, "fwmark": "0x1\n"}, "rules[0].fwmark", "fwmark must be"),
    ({"priority": 1, "fwmark": 2 ** 32}, "rules[0].fwmark", "fwmark must be"),
    ({"priority": 1, "fwmark": 0}, "rules[0].fwmark", "give fwmask"),
    ({"priority": 1, "fwmark": 3, "fwmask": 1}, "rules[0].fwmark", "outside fwmask"),
    ({"priority": 1, "fwmark": 1, "fwmask": 0}, "rules[0].fwmask", "fwmask must be"),
    ({"priority": 1, "fwmask": 1}, "rules[0].fwmask", "needs fwmark"),
    ({"priority": 1, "lookup": 100}, "rules[0]", "unknown key(s) lookup"),
    ("from all", "rules[0]", "must be a mapping"),
])
def test_parse_rule_refuses(item: Any, field: str, words: str) -> None:
    with pytest.raises(NetnsError) as caught:
        parse_rule(item, "rules[0]")
    assert caught.value.obj == field
    assert words in caught.value.message


def test_duplicate_keys_are_refused_naming_both() -> None:
    with pytest.raises(NetnsError) as caught:
        rule_spec("ns", [dict(SRC, table=1), dict(SRC, table=2)], field="namespaces[0].rules")
    assert caught.value.obj == "namespaces[0].rules[1]"
    assert "also at namespaces[0].rules[0]" in caught.value.message


KEY = "inet priority 1000 from 10.1.0.0/24 in netns ns"


@pytest.mark.parametrize("current,wanted,state,expected", [
    ([], [dict(SRC, table=100)], "present", [("create", KEY, None, 100)]),
    ([rule(**SRC, table=100)], [dict(SRC, table=100)], "present", []),
    # the declared key pointing at another table: made to match
    ([rule(**SRC, table=55)], [dict(SRC, table=100)], "present", [("update", KEY, 55, 100)]),
    ([rule(**SRC, table=55), rule(**SRC, table=56)], [dict(SRC, table=100)], "present",
     [("update", KEY, 55, 100), ("delete", KEY, 56, None)]),
    ([rule(**SRC, table=100), rule(**SRC, table=56)], [dict(SRC, table=100)], "present", [("delete", KEY, 56, None)]),
    # other keys and rules with selectors the spec does not use are someone else's
    ([rule(priority=1001, table=55), rule(other=True, **SRC, table=56)], [dict(SRC, table=100)], "present",
     [("create", KEY, None, 100)]),
    ([rule(**dict(SRC, to="10.2.0.0/16"), table=55)], [dict(SRC, table=100)], "present", [("create", KEY, None, 100)]),
    ([rule(priority=1000, family="inet6", table=100)], [{"priority": 1000, "table": 100}], "present",
     [("create", "inet priority 1000 in netns ns", None, 100)]),
    ([rule(**SRC, table=100), rule(**SRC, table=55)], [dict(SRC, table=100)], "absent", [("delete", KEY, 100, None)]),
    ([rule(**SRC, table=55)], [dict(SRC, table=100)], "absent", []),
    ([], [dict(SRC, table=100)], "absent", []),
])
def test_plan_rule_set(current: List[Rule], wanted: list, state: str, expected: list) -> None:
    changes = plan_rule_set(rule_spec("ns", wanted, state=state), current)
    assert [(c.action, c.key, (c.before or {}).get("table"), (c.after or {}).get("table")) for c in changes] == expected


def test_topology_paths_of_rules() -> None:
    data = {"name": "t", "namespaces": [{"name": "n", "rules": [{"priority": 1, "table": 100}, {"priority": 0}]}]}
    with pytest.raises(NetnsError) as caught:
        parse_topology(data)
    assert caught.value.obj == "namespaces[0].rules[1].priority"
    twice = [{"priority": 9, "from": "10.0.0.0/8"}, {"priority": 9, "from": "10.0.0.0/8", "table": 7}]
    data = {"name": "t", "host": {"rules": twice}}
    with pytest.raises(NetnsError) as caught:
        parse_topology(data)
    assert caught.value.obj == "host.rules[1]"
    parsed = parse_topology({"name": "t", "host": {"rules": [{"priority": 9, "fwmark": "0x10", "table": 7}]}})
    assert parsed.host["rules"] == [{"family": "inet", "priority": 9, "from": None, "to": None, "iif": None, "oif": None,
                                     "fwmark": 16, "fwmask": 0xFFFFFFFF, "table": 7}]
    assert parsed.scope_specs[0].rules is not None and parsed.scope_specs[0].rules.netns is None


def read(proto: int = 0, action: int = 1, other: bool = False, **kw: Any) -> Rule:
    return dataclasses.replace(parse_rule(kw, "r"), proto=proto, action=action, other=other)


BARE = {"priority": 1010, "table": 100}


@pytest.mark.parametrize("kernel,target,expected", [
    # the kernel takes the first rule equal in every field a deletion names; an unnamed one matches any
    ([read(**BARE)], 0, 0),
    ([read(**dict(BARE, **{"from": "10.6.0.0/24"})), read(**BARE)], 1, 0),
    ([read(proto=0, **dict(BARE, **{"from": "10.6.0.0/24"})), read(proto=4, **BARE)], 1, 1),  # by its protocol
    ([read(other=True, **BARE), read(**BARE)], 1, 0),  # with a selector not declared (ipproto, ...)
    ([read(action=6, other=True, **BARE), read(**BARE)], 1, 1),  # blackhole: no table to look up
    ([read(priority=1010, table=7), read(**BARE)], 1, 1),
    ([read(**dict(BARE, iif="a")), read(**dict(BARE, iif="b"))], 1, 1),
    ([read(**dict(BARE, fwmark=1)), read(**dict(BARE, fwmark=2))], 1, 1),
    ([read(**dict(BARE, fwmark=0, fwmask=1)), read(**dict(BARE, fwmark=0, fwmask=3))], 1, 1),
    ([read(family="inet6", **BARE), read(**BARE)], 1, 1),
])
def test_deleted_by(kernel: List[Rule], target: int, expected: int) -> None:
    assert deleted_by(kernel[target], kernel) is kernel[expected]


def test_a_deletion_the_kernel_would_carry_out_on_another_rule_is_refused() -> None:
    kernel = [read(**dict(BARE, **{"from": "10.6.0.0/24"})), read(**BARE)]
    with pytest.raises(NetnsError) as caught:
        plan_rule_set(rule_spec("ns", [BARE], state="absent"), kernel)
    assert caught.value.obj == "rule inet priority 1010 in netns ns"
    assert "would delete inet priority 1010 from 10.6.0.0/24 in netns ns instead" in caught.value.message
    # the engine's own rules carry its protocol: a deletion names it, and takes only them
    ours = [read(**dict(BARE, **{"from": "10.6.0.0/24"})), read(proto=4, **BARE)]
    assert [c.action for c in plan_rule_set(rule_spec("ns", [BARE], state="absent"), ours)] == ["delete"]
    # once an earlier deletion of the plan took the rule ahead, the next one finds its own
    spec = rule_spec("ns", [dict(BARE, **{"from": "10.6.0.0/24"}), BARE], state="absent")
    keys = ["inet priority 1010 from 10.6.0.0/24 in netns ns", "inet priority 1010 in netns ns"]
    assert [c.key for c in plan_rule_set(spec, kernel)] == keys


def test_what_the_engine_adds_carries_its_protocol() -> None:
    change = plan_rule_set(rule_spec("ns", [BARE]), [])[0]
    assert change.params.rule.proto == 4 and change.params.rule == parse_rule(BARE, "r")
