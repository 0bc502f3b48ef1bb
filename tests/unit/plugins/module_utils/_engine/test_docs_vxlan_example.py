"""docs/topology-format.md's vxlan example is a valid topology (the real-kernel suite builds one like it)."""

from __future__ import annotations

import os
import re
from typing import Any, Dict

import yaml

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.vxlan import VxlanSpec
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology

DOC = os.path.join(os.path.dirname(__file__), *[os.pardir] * 5, "docs", "topology-format.md")


def vxlan_example() -> Dict[str, Any]:
    with open(DOC, encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("\n## Vxlan\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the vxlan section has no yaml example"
    return yaml.safe_load(block.group(1))


def test_the_example_validates() -> None:
    topology = parse_topology(vxlan_example())
    vxlans = [spec for spec in topology.link_specs if isinstance(spec, VxlanSpec)]
    assert [(v.netns, v.underlay_netns, v.vni, v.remote or v.group, v.port) for v in vxlans] == [
        ("tenant1", "host1", 42, "192.0.2.2", 4789), ("tenant2", "host2", 42, "192.0.2.1", 4789),
        ("tenant1", None, 7, "239.1.1.7", 4789)]
