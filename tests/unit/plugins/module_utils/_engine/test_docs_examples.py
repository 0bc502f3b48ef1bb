"""Each example of docs/topology-format.md's kind sections is a valid topology, parsed as the engine
parses a user's (the real-kernel suite builds ones like them)."""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.vxlan import VxlanSpec
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import Topology, parse_topology

DOC = os.path.join(os.path.dirname(__file__), *[os.pardir] * 5, "docs", "topology-format.md")


def example_of(heading: str) -> Topology:
    """The first yaml block of the section ``## HEADING``, validated."""
    with open(DOC, encoding="utf-8") as handle:
        section = handle.read().split("\n## %s\n" % heading, 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the %s section has no yaml example" % heading
    return parse_topology(yaml.safe_load(block.group(1)))


def test_vxlan() -> None:
    vxlans = [spec for spec in example_of("Vxlan").link_specs if isinstance(spec, VxlanSpec)]
    assert [(v.netns, v.underlay_netns, v.vni, v.remote or v.group, v.port) for v in vxlans] == [
        ("tenant1", "host1", 42, "192.0.2.2", 4789), ("tenant2", "host2", 42, "192.0.2.1", 4789),
        ("tenant1", None, 7, "239.1.1.7", 4789)]


def test_nftables() -> None:
    tables = [t for scope in example_of("nftables").scope_specs if scope.nftables for t in scope.nftables.tables]
    assert [t.key for t in tables] == [("inet", "filter"), ("ip", "nat")]
    assert tables[0].field == "namespaces[0].nftables[0]"


def test_wireguard() -> None:
    links: Any = example_of("WireGuard").link_specs
    [link] = links
    assert link.private_key_file == "/etc/wireguard/vpn.key" and link.underlay_netns is None
    assert link.peers[0].allowed_ips == frozenset({"0.0.0.0/0", "::/0"}) and link.peers[0].persistent_keepalive == 25


def test_host_devices() -> None:
    parsed = example_of("Host devices")
    assert [(item["type"], item["name"]) for item in parsed.links] == [("device", "wan0"), ("macvlan", "mv0")]
    device: Any = parsed.link_specs[0]
    assert device.match_mac == "02:00:5e:10:00:01" and device.netns == "edge"
