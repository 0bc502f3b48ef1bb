"""Table-driven tests of the topology format's validation: every error names its path."""

from __future__ import annotations

import copy
import os
from typing import Any, Dict

import pytest
import yaml

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology

REFERENCE: Dict[str, Any] = {
    "name": "demo",
    "namespaces": [{
        "name": "msb",
        "sysctls": {"net.ipv4.ip_forward": 1},
        "addresses": [{"dev": "veth1", "address": "192.168.50.2/24"}],
        "routes": [{"dst": "default", "via": "192.168.50.3"}],
        "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]}],
    }],
    "links": [{"type": "veth", "name": "veth0", "peer": "veth1", "peer_netns": "msb"}],
    "host": {"addresses": [{"dev": "veth0", "address": "192.168.50.3/24"}]},
}


def with_change(path: str, value: Any) -> Dict[str, Any]:
    """A copy of REFERENCE with the value at a dotted path ('namespaces.0.name') replaced."""
    spec = copy.deepcopy(REFERENCE)
    *parents, last = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return spec


def test_reference_topology_parses() -> None:
    topology = parse_topology(REFERENCE)
    assert topology.name == "demo"
    assert topology.namespaces[0]["routes"][0]["dst"] == "0.0.0.0/0"
    assert {(e.netns, e.name) for e in topology.endpoints} == {(None, "veth0"), ("msb", "veth1")}


BAD = [
    ("name", "bad name!", "name", "topology name"),
    ("version", 2, "version", "unsupported format version"),
    ("colour", "blue", "topology", "unknown key(s) colour"),
    ("namespaces.0.name", "../etc", "namespaces[0].name", "not allowed"),
    ("namespaces.0.name", "", "namespaces[0].name", "non-empty"),
    ("namespaces.0.sysctls", {"kernel.pid_max": 1}, "namespaces[0].sysctls.kernel.pid_max", "only net.*"),
    ("namespaces.0.loopback", "sideways", "namespaces[0].loopback", "up, down or unmanaged"),
    ("namespaces.0.nameservers", ["dns.example"], "namespaces[0].nameservers[0]", "not a valid IP"),
    ("namespaces.0.addresses.0.address", "192.168.50.300/24", "namespaces[0].addresses[0].address", "not a valid"),
    ("namespaces.0.addresses.0.address", "192.168.50.2", "namespaces[0].addresses[0].address", "CIDR"),
    ("namespaces.0.addresses.0.dev", "eth7", "namespaces[0].addresses[0].dev", "not declared"),
    ("namespaces.0.addresses.0.dev", "x" * 16, "namespaces[0].addresses[0].dev", "at most 15"),
    ("namespaces.0.routes.0.via", "10.9.9.9", "namespaces[0].routes[0].via", "on no subnet declared"),
    ("namespaces.0.routes.0", {"dst": "10.0.0.0/8", "via": "fe80::1"}, "namespaces[0].routes[0].via",
     "IPv6 but the destination"),
    ("namespaces.0.routes.0", {"dst": "10.0.0.0/8"}, "namespaces[0].routes[0]", "needs a gateway"),
    ("namespaces.0.routes.0", {"dst": "10.0.0.1/8", "dev": "veth1"}, "namespaces[0].routes[0].dst", "host bits"),
    ("namespaces.0.routes.0", {"dst": "default", "via": "192.168.50.3", "metric": -1}, "namespaces[0].routes[0].metric", "integer"),
    ("namespaces.0.iptables.0.table", "nope", "namespaces[0].iptables[0].table", "filter, nat"),
    ("namespaces.0.iptables.0.ip_version", 4, "namespaces[0].iptables[0].ip_version", "ipv4 or ipv6"),
    ("links.0.type", "tunnel", "links[0].type", "must be one of"),
    ("links.0.peer_netns", "nowhere", "links[0].peer_netns", "not declared"),
    ("links.0.peer", "veth0", "links[0].peer", None),
    ("links.0.mtu", 10, "links[0].mtu", "out of range"),
    ("links.0.mac", "01:00:5e:00:00:01", "links[0].mac", "multicast"),
    ("links.0.up", "yes", "links[0].up", "true or false"),
    ("links.0.extra", 1, "links[0]", "unknown key(s) extra"),
    ("host.addresses.0", "veth0 192.168.50.3/24", "host.addresses[0]", "must be a mapping"),
    ("namespaces", {"name": "msb"}, "namespaces", "must be a list"),
]


@pytest.mark.parametrize("path,value,where,message", BAD)
def test_bad_spec_names_its_path(path: str, value: Any, where: str, message: Any) -> None:
    spec = with_change(path, value)
    if path == "links.0.peer":  # same name, same namespace on both ends
        spec["links"][0]["peer_netns"] = None
        spec["namespaces"][0]["addresses"] = []
        spec["namespaces"][0]["routes"] = []
    with pytest.raises(NetnsError) as caught:
        parse_topology(spec)
    assert caught.value.obj == where
    if message:
        assert message in str(caught.value)


def test_duplicates_are_refused() -> None:
    spec = copy.deepcopy(REFERENCE)
    spec["namespaces"].append({"name": "msb"})
    with pytest.raises(NetnsError, match="duplicate namespace msb"):
        parse_topology(spec)
    spec = copy.deepcopy(REFERENCE)
    spec["links"].append({"type": "bridge", "name": "veth1", "netns": "msb"})
    with pytest.raises(NetnsError, match="declared twice"):
        parse_topology(spec)
    spec = copy.deepcopy(REFERENCE)
    spec["namespaces"][0]["addresses"].append({"dev": "veth1", "address": "192.168.50.2/25"})
    with pytest.raises(NetnsError, match="declared twice"):
        parse_topology(spec)


def test_bridge_ports_must_be_declared_in_its_namespace() -> None:
    spec = copy.deepcopy(REFERENCE)
    spec["links"].append({"type": "bridge", "name": "br0", "netns": "msb", "ports": ["veth0"]})
    with pytest.raises(NetnsError) as caught:
        parse_topology(spec)
    assert caught.value.obj == "links[1].ports[0]"
    spec["links"][1]["ports"] = ["veth1"]
    parse_topology(spec)


def _veth(name: str, peer: str, netns: str = "a") -> Dict[str, Any]:
    return {"type": "veth", "name": name, "peer": peer, "netns": netns, "peer_netns": "b"}


ORDER = [
    # (declared links, expected order of names): dependencies first, otherwise declaration order
    ([_veth("p1", "e1"), _veth("p2", "e2")], ["p1", "p2"]),
    ([{"type": "bridge", "name": "br0", "netns": "a", "ports": ["p1", "p2"]}, _veth("p1", "e1"), _veth("p2", "e2")],
     ["p1", "p2", "br0"]),
    ([_veth("p2", "e2"), {"type": "bridge", "name": "br0", "netns": "a", "ports": ["p1", "p2"]}, _veth("p1", "e1")],
     ["p2", "p1", "br0"]),
    ([{"type": "vlan", "name": "br0.5", "netns": "a", "parent": "br0", "parent_netns": "a", "id": 5},
      {"type": "bridge", "name": "br0", "netns": "a", "ports": ["p1"]}, _veth("p1", "e1")],
     ["p1", "br0", "br0.5"]),
    ([{"type": "macvlan", "name": "mv0", "netns": "a", "parent": "eth0", "mode": "bridge"}], ["mv0"]),  # undeclared parent
]


@pytest.mark.parametrize("links,expected", ORDER)
def test_links_are_applied_after_the_links_they_need(links: Any, expected: Any) -> None:
    spec = {"name": "order", "namespaces": [{"name": "a"}, {"name": "b"}], "links": links}
    assert [link["name"] for link in parse_topology(spec).links] == expected


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5, "docs", "topology-format.md")


def doc_example(section: str) -> Dict[str, Any]:
    """The first YAML block after the heading ``section`` of docs/topology-format.md."""
    if not os.path.exists(DOCS):
        pytest.skip("docs/topology-format.md is not part of this copy of the collection")
    with open(DOCS, encoding="utf-8") as handle:
        text = handle.read()
    after = text.split("\n## %s\n" % section, 1)[1]
    return yaml.safe_load(after.split("```yaml\n", 1)[1].split("\n```", 1)[0])


def test_the_policy_routing_rules_example_validates() -> None:
    topology = parse_topology(doc_example("Policy routing rules"))
    edge = topology.scope_specs[1].rules
    assert edge is not None and [rule.priority for rule in edge.rules] == [1000, 1010, 1020, 1030, 1040]
    assert [rule.family for rule in edge.rules] == [4, 4, 6, 6, 4]
    assert topology.scope_specs[0].rules is not None and topology.scope_specs[0].rules.netns is None
