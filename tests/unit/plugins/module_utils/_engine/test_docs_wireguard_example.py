"""docs/topology-format.md's WireGuard example is a valid topology (the real-kernel suite runs a tunnel)."""

from __future__ import annotations

import os
import re

import yaml

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology

DOC = os.path.join(os.path.dirname(__file__), *[os.pardir] * 5, "docs", "topology-format.md")


def test_the_example_validates() -> None:
    with open(DOC, encoding="utf-8") as handle:
        section = handle.read().split("\n## WireGuard\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the WireGuard section has no yaml example"
    topology = parse_topology(yaml.safe_load(block.group(1)))
    [link] = topology.link_specs
    assert link.private_key_file == "/etc/wireguard/vpn.key" and link.underlay_netns is None
    assert link.peers[0].allowed_ips == frozenset({"0.0.0.0/0", "::/0"}) and link.peers[0].persistent_keepalive == 25
