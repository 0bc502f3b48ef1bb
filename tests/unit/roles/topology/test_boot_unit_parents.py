"""The boot unit is ordered after the root-namespace devices links are made on: a vlan's or
macvlan's parent, a vxlan's dev (keys left out of the spec as well as null)."""

import re
from pathlib import Path
from typing import Any, Dict, List

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:  # ansible-core 2.19+ templates only what is marked trusted (a role's template file is)
    from ansible.template import trust_as_template
except ImportError:
    def trust_as_template(value: str) -> str:
        return value

TEMPLATE = Path(__file__).resolve().parents[4] / "roles" / "topology" / "templates" / "linuxnet-netns.service.j2"


def ordered_after(spec: Dict[str, Any]) -> List[str]:
    source = TEMPLATE.read_text()
    variables: Dict[str, Any] = {name: "x" for name in re.findall(r"\b((?:topology|ansible)_[a-z_]+)\b", source)}
    variables.update(topology_spec=spec, topology_wait_parents=30)
    unit = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source))
    return [line for line in unit.splitlines() if line.startswith("After=sys-subsystem-net-devices-")]


def test_root_namespace_parents_and_vxlan_devs_only() -> None:
    spec = {"name": "t", "links": [
        {"type": "vlan", "name": "v10", "parent": "eth0", "id": 10},
        {"type": "macvlan", "name": "mv", "parent": "eth0", "parent_netns": None},
        {"type": "macvlan", "name": "mv2", "parent": "e9", "parent_netns": "n"},
        {"type": "vxlan", "name": "vx", "netns": "n", "id": 1, "group": "239.1.1.1", "dev": "eno-1"},
        {"type": "vxlan", "name": "vy", "netns": "n", "id": 2, "remote": "192.0.2.2", "dev": "und0", "underlay_netns": "u"},
        {"type": "vxlan", "name": "vz", "netns": "n", "id": 3, "remote": "192.0.2.3"},
        {"type": "veth", "name": "a", "peer": "b"}]}
    assert ordered_after(spec) == ["After=sys-subsystem-net-devices-eno\\x2d1.device",
                                   "After=sys-subsystem-net-devices-eth0.device"]


def test_no_links_no_ordering() -> None:
    assert ordered_after({"name": "t"}) == []
