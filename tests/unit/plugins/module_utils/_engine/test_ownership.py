"""Ownership records: what purge may remove of addresses, routes and rules (table-driven over pairs
of specs), what a run claims ahead, and every corrupt shape of a record file as a clear error."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.system import procfs

from ansible_collections.linuxnet.netns.plugins.module_utils._engine import ownership
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.ownership import Record, claimed, retired_objects
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.model import Change
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.namespace import NamespaceParams
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.veth import VethEnd, VethPair
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.virtual_link import VirtualLinkParams


def spec(namespaces: List[Dict[str, Any]], links: List[Dict[str, Any]] = (), host: Dict[str, Any] = None) -> Dict[str, Any]:
    return {"name": "t", "namespaces": list(namespaces), "links": list(links), "host": host or {}}


VETH = {"type": "veth", "name": "v0", "peer": "v1", "peer_netns": "a"}
A = {"name": "a", "addresses": [{"dev": "v1", "address": "10.0.0.2/24"}],
     "routes": [{"dst": "default", "via": "10.0.0.1"}],
     "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-j ACCEPT", "-p udp -j DROP"]}]}]}
A_BARE = {"name": "a", "addresses": [{"dev": "v1", "address": "10.0.0.2/24"}]}

CASES = [
    # (title, old spec, new spec, namespaces that go whole, #addresses, #routes, #iptables)
    ("nothing removed", spec([A], [VETH]), spec([A], [VETH]), set(), 0, 0, 0),
    ("link dropped: its address", spec([A_BARE], [VETH]), spec([{"name": "a"}]), set(), 1, 0, 0),
    ("route and rules dropped", spec([A], [VETH]), spec([A_BARE], [VETH]), set(), 0, 1, 1),
    ("inside a namespace that goes nothing else", spec([A], [VETH]), spec([]), {"a"}, 0, 0, 0),
    ("a namespace that stays keeps its leftovers", spec([A], [VETH]), spec([]), set(), 1, 1, 1),
]


@pytest.mark.parametrize("title,old,new,gone,addresses,routes,iptables", CASES)
def test_retired_objects(title: str, old: Dict[str, Any], new: Dict[str, Any], gone: set, addresses: int,
                         routes: int, iptables: int) -> None:
    result = retired_objects(Record(old), parse_topology(new), gone)
    assert (len(result["addresses"]), len(result["routes"]), len(result["iptables"])) == (addresses, routes, iptables)


def test_removed_rules_keep_only_the_dropped_ones() -> None:
    old = spec([A], [VETH])
    new_a = dict(A, iptables=[{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-j ACCEPT"]}]}])
    result = retired_objects(Record(old), parse_topology(spec([new_a], [VETH])), set())
    assert result["iptables"] == [("a", {"ip_version": "ipv4", "table": "filter",
                                         "chains": [{"name": "INPUT", "rules": ["-p udp -j DROP"]}]})]


def test_a_run_claims_what_it_creates_ahead() -> None:
    changes = [Change("netns", "create", "a", params=NamespaceParams("a")),
               Change("link", "create", "v0 in root namespace", params=VethPair(VethEnd(None, "v0"), VethEnd("a", "v1"))),
               Change("link", "create", "br in netns a", params=VirtualLinkParams("bridge", "a", "br"))]
    known = Record(spec([]), procfs.boot_id(), {"old": ["cookie", 7]})
    ahead = claimed(known, changes)
    assert ahead.namespaces == {"old": ["cookie", 7], "a": None}
    assert {key: (claim.type, claim.identity, claim.peer) for key, claim in ahead.links.items()} == {
        (None, "v0"): ("veth", None, ("a", "v1")), ("a", "v1"): ("veth", None, (None, "v0")),
        ("a", "br"): ("bridge", None, None)}
    assert known.namespaces == {"old": ["cookie", 7]}  # the loaded record is left as it was
    stale = claimed(Record(spec([]), "another boot", {"old": ["cookie", 7]}), changes)
    assert set(stale.namespaces) == {"a"}  # nothing of another boot is ours


def test_a_record_survives_its_own_json() -> None:
    record = claimed(Record(spec([A], [VETH]), procfs.boot_id()), [Change("netns", "create", "a", params=NamespaceParams("a"))])
    record.namespaces["a"] = ["cookie", 42]
    assert ownership._from_json(json.loads(record.as_json())) == record


GOOD = {"version": 2, "boot_id": "b", "spec": {"name": "t"}, "retired": {}, "namespaces": {}, "links": []}
BAD_RECORDS = [
    ("a list", []),
    ("no spec", {"version": 2}),
    ("unknown version", dict(GOOD, version=9)),
    ("namespaces a list", dict(GOOD, namespaces=[])),
    ("identity a number", dict(GOOD, namespaces={"a": 5})),
    ("links an object", dict(GOOD, links={})),
    ("link without name", dict(GOOD, links=[{"netns": None, "type": "veth", "identity": None}])),
    ("link name a number", dict(GOOD, links=[{"netns": None, "name": 3, "type": "veth", "identity": None}])),
    ("link entry empty", dict(GOOD, links=[{}])),
    ("peer of one", dict(GOOD, links=[{"netns": None, "name": "x", "type": "veth", "identity": None, "peer": ["a"]}])),
    ("retired kind unknown", dict(GOOD, retired={"namespaces": []})),
    ("retired entry a string", dict(GOOD, retired={"routes": ["x"]})),
    ("boot id a number", dict(GOOD, boot_id=1)),
    ("version 1 with a bad spec", {"version": 1, "spec": {"name": 5}}),
]


@pytest.mark.parametrize("title,data", BAD_RECORDS)
def test_a_corrupt_record_is_a_clear_error(title: str, data: Any, tmp_path: Any) -> None:
    _write_record(tmp_path, json.dumps(data))
    with pytest.raises(NetnsError) as failure:
        ownership.load("t", str(tmp_path))
    assert failure.value.obj == os.path.join(str(tmp_path), "t.owned.json"), title


@pytest.mark.parametrize("text", ["", "{", "[" * 100000 + "]" * 100000, '{"version": 2, "spec": ' * 5000])
def test_unreadable_and_deeply_nested_records_are_clear_errors(text: str, tmp_path: Any) -> None:
    _write_record(tmp_path, text)
    with pytest.raises(NetnsError, match="ownership record"):
        ownership.load("t", str(tmp_path))


def test_a_version_1_record_claims_what_it_did_not_call_foreign(tmp_path: Any) -> None:
    old = spec([A, {"name": "b"}], [VETH])
    _write_record(tmp_path, json.dumps({"version": 1, "spec": old, "foreign_namespaces": ["b"],
                                        "foreign_links": [], "retired": {}}))
    record = ownership.load("t", str(tmp_path))
    assert record.namespaces == {"a": None}
    assert set(record.links) == {(None, "v0"), ("a", "v1")}


def _write_record(directory: Any, text: str) -> None:
    path = os.path.join(str(directory), "t.owned.json")
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def test_retired_rules_declared_again_are_not_purged() -> None:
    """A run that skipped the rules (iptables missing at boot) retires them; declared again, they stay."""
    rules = dict(A["iptables"][0], ip_version="ipv4")
    bare = Record(spec([A_BARE], [VETH]), retired={"iptables": [["a", rules]]})
    result = retired_objects(bare, parse_topology(spec([A], [VETH])), set())
    assert result["iptables"] == []
    half = dict(A, iptables=[{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-j ACCEPT"]}]}])
    result = retired_objects(bare, parse_topology(spec([half], [VETH])), set())
    assert result["iptables"] == [("a", {"ip_version": "ipv4", "table": "filter",
                                         "chains": [{"name": "INPUT", "rules": ["-p udp -j DROP"]}]})]


def test_a_recorded_spec_that_validation_now_refuses_is_still_understood() -> None:
    """A spec applied (or written ahead) by an earlier version may hold what validation now refuses
    because the kernel would (a link named lo, an IPv4 multicast address): its record must still
    tell purge what it declared, not fail every later run."""
    old = spec([{"name": "a", "addresses": [{"dev": "v1", "address": "224.0.0.5/24"}],
                 "routes": [{"dst": "10.9.0.0/16", "dev": "v1", "src": "10.9.9.9"}]}],
               [VETH, {"type": "veth", "name": "lo", "netns": "a", "peer": "x1"}])
    with pytest.raises(NetnsError):
        parse_topology(old)
    result = retired_objects(Record(old), parse_topology(spec([{"name": "a"}])), set())
    assert [item["address"] for _ns, item in result["addresses"]] == ["224.0.0.5/24"]


POLICY = [{"priority": 1000, "from": "10.1.0.0/24", "table": 100}, {"priority": 1001, "fwmark": "0x1", "table": 100}]


@pytest.mark.parametrize("title,old,new,gone,expected", [
    ("policy rules kept", spec([dict(A_BARE, rules=POLICY)], [VETH]), spec([dict(A_BARE, rules=POLICY)], [VETH]),
     set(), []),
    ("one dropped", spec([dict(A_BARE, rules=POLICY)], [VETH]), spec([dict(A_BARE, rules=POLICY[:1])], [VETH]),
     set(), [("a", 1001)]),
    ("another table is the same rule, not retired", spec([dict(A_BARE, rules=POLICY)], [VETH]),
     spec([dict(A_BARE, rules=[dict(POLICY[0], table=7), POLICY[1]])], [VETH]), set(), []),
    ("the host's", spec([], host={"rules": POLICY}), spec([]), set(), [(None, 1000), (None, 1001)]),
    ("with a namespace that goes", spec([dict(A_BARE, rules=POLICY)], [VETH]), spec([]), {"a"}, []),
])
def test_retired_policy_rules(title: str, old: Dict[str, Any], new: Dict[str, Any], gone: set, expected: list) -> None:
    result = retired_objects(Record(old), parse_topology(new), gone)
    assert [(netns, item["priority"]) for netns, item in result["rules"]] == expected


def test_retired_policy_rules_survive_the_record_and_go_when_declared_again(tmp_path: Any) -> None:
    old = spec([dict(A_BARE, rules=POLICY)], [VETH])
    record = Record(old, "b", retired=ownership._as_json_lists(retired_objects(
        Record(old), parse_topology(spec([A_BARE], [VETH])), set())))
    loaded = ownership._from_json(json.loads(record.as_json()))
    assert [entry[1]["priority"] for entry in loaded.retired["rules"]] == [1000, 1001]
    again = Record(spec([A_BARE], [VETH]), "b", retired=loaded.retired)
    result = retired_objects(again, parse_topology(spec([dict(A_BARE, rules=POLICY[1:])], [VETH])), set())
    assert [(netns, item["priority"]) for netns, item in result["rules"]] == [("a", 1000)]
