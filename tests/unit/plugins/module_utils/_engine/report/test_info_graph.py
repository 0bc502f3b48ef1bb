"""Table-driven tests of the pure parts of issue 6: info -> spec, and spec -> picture."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.report.graph import to_dot, to_mermaid
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.report.info import spec_from_info
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology


def link(name: str, kind: Any = "veth", peer: Any = None, master: Any = None, state: str = "up", mtu: int = 1500) -> Dict[str, Any]:
    return {"name": name, "kind": kind, "mtu": mtu, "mac": "02:00:00:00:00:01", "state": state, "index": 2,
            "master": master, "peer": peer, "parent": None}


LO = {"name": "lo", "kind": None, "mtu": 65536, "mac": "00:00:00:00:00:00", "state": "up", "index": 1,
      "master": None, "peer": None, "parent": None}


def namespace(name: str, links: List[Dict[str, Any]], addresses: Any = (), routes: Any = (), **extra: Any) -> Dict[str, Any]:
    return dict({"name": name, "links": [LO] + links, "addresses": list(addresses), "routes": list(routes),
                 "sysctls": {}, "nameservers": None, "iptables": {"ipv4": {}, "ipv6": {}}}, **extra)


INFO = {
    "namespaces": [
        namespace("msb", [link("veth1", peer={"netns": None, "name": "veth0"})],
                  addresses=[{"dev": "veth1", "address": "192.168.50.2/24"}, {"dev": "veth1", "address": "fe80::1/64"},
                             {"dev": "lo", "address": "127.0.0.1/8"}],
                  routes=[{"dst": "192.168.50.0/24", "table": 254, "dev": "veth1", "protocol": 2},
                          {"dst": "default", "table": 254, "via": "192.168.50.3", "dev": "veth1", "protocol": 4}],
                  sysctls={"net.ipv4.ip_forward": "1"},
                  rules=[{"family": "inet", "priority": 0, "table": 255},
                         {"family": "inet", "priority": 1000, "from": "192.168.50.0/24", "table": 100},
                         {"family": "inet6", "priority": 1001, "fwmark": "0x1", "fwmask": "0xffffffff", "table": 100},
                         {"family": "inet", "priority": 1002, "table": 100, "other": True},
                         {"family": "inet", "priority": 32766, "table": 254}],
                  iptables={"ipv4": {"filter": {"INPUT": {"policy": "ACCEPT", "rules": ["-p tcp -m tcp --dport 22 -j ACCEPT"]},
                                                "FORWARD": {"policy": "DROP", "rules": []},
                                                "OUTPUT": {"policy": "ACCEPT", "rules": []}}}, "ipv6": {}}),
        namespace("sw", [link("br0", "bridge"), link("p1", peer={"netns": "h1", "name": "e1"}, master="br0")]),
        namespace("h1", [link("e1", peer={"netns": "sw", "name": "p1"}, mtu=1400)]),
    ],
    "host": namespace("", [link("eth0", None), link("veth0", peer={"netns": "msb", "name": "veth1"}, state="down")],
                      addresses=[{"dev": "eth0", "address": "10.0.0.5/24"}, {"dev": "veth0", "address": "192.168.50.3/24"}],
                      routes=[{"dst": "default", "table": 254, "via": "10.0.0.1", "dev": "eth0", "protocol": 3}]),
    "anonymous": [],
}

SPEC = spec_from_info(INFO, "cap")


@pytest.mark.parametrize("path,expected", [
    (("namespaces", 0, "sysctls"), {"net.ipv4.ip_forward": "1"}),
    (("namespaces", 0, "addresses"), [{"dev": "veth1", "address": "192.168.50.2/24"}]),  # no link-local, no lo
    (("namespaces", 0, "routes"), [{"dst": "default", "via": "192.168.50.3", "dev": "veth1"}]),  # no kernel routes
    # not the kernel's default rules, nor one with a selector a topology cannot declare
    (("namespaces", 0, "rules"), [{"priority": 1000, "from": "192.168.50.0/24", "table": 100},
                                  {"family": "inet6", "priority": 1001, "fwmark": "0x1", "table": 100}]),
    (("namespaces", 0, "iptables", 0, "chains"), [{"name": "INPUT", "rules": ["-p tcp -m tcp --dport 22 -j ACCEPT"]},
                                                  {"name": "FORWARD", "policy": "DROP"}]),
    (("links", 0), {"type": "veth", "name": "veth1", "netns": "msb", "peer": "veth0", "peer_netns": None, "peer_up": False}),
    (("links", 1), {"type": "bridge", "name": "br0", "netns": "sw", "ports": ["p1"]}),
    (("links", 2), {"type": "veth", "name": "p1", "netns": "sw", "peer": "e1", "peer_netns": "h1", "peer_mtu": 1400}),
    (("host",), {"addresses": [{"dev": "veth0", "address": "192.168.50.3/24"}]}),  # not eth0's, not its route
])
def test_spec_from_info(path: Any, expected: Any) -> None:
    node: Any = SPEC
    for step in path:
        node = node[step]
    assert node == expected


def test_captured_spec_is_valid() -> None:
    assert [link["name"] for link in parse_topology(SPEC).links] == ["veth1", "p1", "br0"]


@pytest.mark.parametrize("render,expected", [
    (to_mermaid, ['flowchart LR', 'ns0["root namespace"]', 'netns msb<br/>ipv4.ip_forward=1<br/>default via 192.168.50.3',
                  '|"veth: veth1 192.168.50.2/24 — veth0 192.168.50.3/24"|', 'bridge br0: p1', '1 iptables rule',
                  '<br/>rule 1000 from 192.168.50.0/24 table 100<br/>rule 1001 fwmark 0x1 table 100']),
    (to_dot, ['graph "cap" {', 'label="root namespace"', '[label="veth1 192.168.50.2/24\\nveth0 192.168.50.3/24"]',
              'bridge br0: p1']),
])
def test_pictures(render: Any, expected: List[str]) -> None:
    text = render(SPEC)
    for piece in expected:
        assert piece in text, text
