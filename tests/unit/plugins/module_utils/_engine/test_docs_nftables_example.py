"""docs/topology-format.md's nftables example is a valid topology (the real-kernel suite has nft load its tables)."""

from __future__ import annotations

import os
import re
from typing import Any, Dict

import yaml

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology

DOC = os.path.join(os.path.dirname(__file__), *[os.pardir] * 5, "docs", "topology-format.md")


def nftables_example() -> Dict[str, Any]:
    with open(DOC, encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("\n## nftables\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the nftables section has no yaml example"
    return yaml.safe_load(block.group(1))


def test_the_example_validates() -> None:
    topology = parse_topology(nftables_example())
    tables = [t for scope in topology.scope_specs if scope.nftables for t in scope.nftables.tables]
    assert [t.key for t in tables] == [("inet", "filter"), ("ip", "nat")]
    assert tables[0].field == "namespaces[0].nftables[0]"
