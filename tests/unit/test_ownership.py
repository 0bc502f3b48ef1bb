"""Ownership: what purge may remove, table-driven over pairs of specs."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils.ownership import Record, undeclared
from ansible_collections.linuxnet.netns.plugins.module_utils.plan import Change
from ansible_collections.linuxnet.netns.plugins.module_utils.ownership import updated
from ansible_collections.linuxnet.netns.plugins.module_utils.topology_spec import parse_topology


def spec(namespaces: List[Dict[str, Any]], links: List[Dict[str, Any]] = (), host: Dict[str, Any] = None) -> Dict[str, Any]:
    return {"name": "t", "namespaces": list(namespaces), "links": list(links), "host": host or {}}


VETH = {"type": "veth", "name": "v0", "peer": "v1", "peer_netns": "a"}
A = {"name": "a", "addresses": [{"dev": "v1", "address": "10.0.0.2/24"}],
     "routes": [{"dst": "default", "via": "10.0.0.1"}],
     "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-j ACCEPT", "-p udp -j DROP"]}]}]}
A_BARE = {"name": "a", "addresses": [{"dev": "v1", "address": "10.0.0.2/24"}]}

CASES = [
    # (old spec, new spec, foreign namespaces, expected namespaces, links, #addresses, #routes, #iptables)
    ("nothing removed", spec([A], [VETH]), spec([A], [VETH]), set(), [], [], 0, 0, 0),
    ("namespace dropped", spec([A, {"name": "b"}], [VETH]), spec([A], [VETH]), set(), ["b"], [], 0, 0, 0),
    ("foreign namespace kept", spec([A, {"name": "b"}], [VETH]), spec([A], [VETH]), {"b"}, [], [], 0, 0, 0),
    ("link dropped", spec([A_BARE], [VETH]), spec([{"name": "a"}]), set(), [], ["v0"], 1, 0, 0),
    ("route and rules dropped", spec([A], [VETH]), spec([A_BARE], [VETH]), set(), [], [], 0, 1, 1),
    ("inside a dropped namespace nothing else", spec([A], [VETH]), spec([]), set(), ["a"], ["v0"], 0, 0, 0),
]


@pytest.mark.parametrize("title,old,new,foreign,namespaces,links,addresses,routes,iptables", CASES)
def test_undeclared(title: str, old: Dict[str, Any], new: Dict[str, Any], foreign: set, namespaces: List[str],
                    links: List[str], addresses: int, routes: int, iptables: int) -> None:
    result = undeclared(Record(old, foreign_namespaces=foreign), parse_topology(new))
    assert result["namespaces"] == namespaces
    assert [item["name"] for item in result["links"]] == links
    assert len(result["addresses"]) == addresses
    assert len(result["routes"]) == routes
    assert len(result["iptables"]) == iptables


def test_removed_rules_keep_only_the_dropped_ones() -> None:
    old = spec([A], [VETH])
    new_a = dict(A, iptables=[{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-j ACCEPT"]}]}])
    result = undeclared(Record(old), parse_topology(spec([new_a], [VETH])))
    assert result["iptables"] == [("a", {"ip_version": "ipv4", "table": "filter",
                                         "chains": [{"name": "INPUT", "rules": ["-p udp -j DROP"]}]})]


def test_updated_marks_preexisting_objects_foreign() -> None:
    data = spec([A, {"name": "b"}], [VETH])
    changes = [Change("netns", "create", "a"), Change("link", "create", "v0 in root namespace")]
    record = updated(None, data, parse_topology(data), changes)
    assert record.foreign_namespaces == {"b"}
    assert record.foreign_links == set()
    # a later run that creates nothing keeps what was ours ours
    again = updated(record, data, parse_topology(data), [])
    assert again.foreign_namespaces == {"b"} and again.foreign_links == set()


def test_a_recorded_spec_that_validation_now_refuses_is_still_understood() -> None:
    """A spec applied (or written ahead) by an earlier version may hold what validation now refuses
    because the kernel would (a link named lo, an IPv4 multicast address): its record must still
    tell purge what it created, not fail every later run."""
    old = spec([{"name": "a", "addresses": [{"dev": "v1", "address": "224.0.0.5/24"}],
                 "routes": [{"dst": "10.9.0.0/16", "dev": "v1", "src": "10.9.9.9"}]}],
               [VETH, {"type": "veth", "name": "lo", "netns": "a", "peer": "x1"}])
    with pytest.raises(NetnsError):
        parse_topology(old)
    result = undeclared(Record(old), parse_topology(spec([{"name": "a"}])))
    assert sorted(item["name"] for item in result["links"]) == ["lo", "v0"]
    assert [item["address"] for _ns, item in result["addresses"]] == ["224.0.0.5/24"]
