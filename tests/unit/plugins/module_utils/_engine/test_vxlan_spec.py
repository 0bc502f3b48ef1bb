"""The vxlan link type without a kernel: its validation (every error names its path, nothing is
planned for a bad input), its normalised form, its place in the dependency order, its IFLA_INFO_DATA
as the engine's decoder reads it, netns_info's capture of it, its picture, and the boot restore's
wait for a root-namespace underlay device."""

from __future__ import annotations

import copy
import socket
import struct
from typing import Any, Dict

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine._netlink import constants as c
from ansible_collections.linuxnet.netns.plugins.module_utils._engine._netlink.decode import decode
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.cli import root_parent, without_parents
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.link import VxlanAttributes, _link_from_msg
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.vxlan import VxlanSpec
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.report.graph import to_mermaid
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.report.info import spec_from_info
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology

SPEC: Dict[str, Any] = {
    "name": "overlay",
    "namespaces": [{"name": "host1", "addresses": [{"dev": "eth0", "address": "192.0.2.1/24"}]},
                   {"name": "host2", "addresses": [{"dev": "eth0", "address": "192.0.2.2/24"}]},
                   {"name": "tenant", "addresses": [{"dev": "vx0", "address": "10.42.0.1/24"}]}],
    "links": [
        {"type": "vxlan", "name": "vx0", "netns": "tenant", "underlay_netns": "host1", "id": 42,
         "remote": "192.0.2.2", "local": "192.0.2.1", "dev": "eth0"},
        {"type": "veth", "name": "eth0", "netns": "host1", "peer": "eth0", "peer_netns": "host2"},
    ],
}


def with_vxlan(**changes: Any) -> Dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["links"][0].update(changes)
    spec["links"][0] = {key: value for key, value in spec["links"][0].items() if value is not None}
    return spec


def test_a_vxlan_is_normalised_and_comes_after_its_underlay_device() -> None:
    topology = parse_topology(with_vxlan(local=None, remote="2001:db8::2", dev="eth0"))
    assert [item["type"] for item in topology.links] == ["veth", "vxlan"]
    vxlan = topology.link_specs[1]
    assert isinstance(vxlan, VxlanSpec)
    assert (vxlan.vni, vxlan.remote, vxlan.group, vxlan.port, vxlan.underlay_netns, vxlan.dev) == \
        (42, "2001:db8::2", None, 4789, "host1", "eth0")
    assert vxlan.config() == {"id": 42, "remote": "2001:db8::2", "dev": "eth0", "port": 4789, "underlay_netns": "host1"}


def test_a_multicast_group_on_the_root_namespace_underlay() -> None:
    spec = with_vxlan(underlay_netns=None, remote=None, local=None, group="239.1.1.1", dev="eno1", port=8472)
    vxlan = next(item for item in parse_topology(spec).link_specs if isinstance(item, VxlanSpec))
    assert (vxlan.group, vxlan.remote, vxlan.underlay_netns, vxlan.dev, vxlan.port) == ("239.1.1.1", None, None, "eno1", 8472)


BAD = [
    ({"id": None}, "links[0].id", "a vxlan needs an id (0..16777215)"),
    ({"id": 16777216}, "links[0].id", "from 0 to 16777215"),
    ({"id": True}, "links[0].id", "must be an integer"),
    ({"port": 0}, "links[0].port", "from 1 to 65535"),
    ({"port": 65536}, "links[0].port", "from 1 to 65535"),
    ({"remote": None}, "links[0]", "either a remote (one peer) or a multicast group, not neither"),
    ({"group": "239.1.1.1"}, "links[0]", "not both"),
    ({"remote": None, "group": "192.0.2.9"}, "links[0].group", "not a multicast address"),
    ({"remote": None, "group": "239.1.1.1", "dev": None}, "links[0].dev", "needs the underlay device (dev)"),
    ({"remote": "239.1.1.1"}, "links[0].remote", "not a unicast address"),
    ({"remote": "0.0.0.0"}, "links[0].remote", "not a unicast address"),
    ({"remote": "host2"}, "links[0].remote", "not a valid IP address"),
    ({"local": "2001:db8::1"}, "links[0].local", "local 2001:db8::1 is IPv6 but the remote 192.0.2.2 is IPv4"),
    ({"local": "224.0.0.1"}, "links[0].local", "224.0.0.1 is not a unicast address"),
    ({"remote": "2001:db8::2", "local": "ff02::1"}, "links[0].local", "ff02::1 is not a unicast address"),
    ({"remote": "fe80::2", "local": None, "dev": None}, "links[0].dev", "the link-local address fe80::2 needs the underlay device"),
    ({"remote": "2001:db8::2", "local": "fe80::1", "dev": None}, "links[0].dev", "the link-local address fe80::1 needs"),
    ({"dev": "eth9"}, "links[0].dev", "link eth9 is not declared in namespace host1"),
    ({"dev": "bad/name"}, "links[0].dev", ""),
    ({"underlay_netns": "elsewhere"}, "links[0].underlay_netns", "namespace 'elsewhere' is not declared"),
    ({"vni": 42}, "links[0]", "unknown key(s) vni"),
    ({"parent": "eth0"}, "links[0]", "unknown key(s) parent"),
]


@pytest.mark.parametrize("changes, path, message", BAD)
def test_bad_vxlan_input_names_its_path(changes: Dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(NetnsError) as caught:
        parse_topology(with_vxlan(**changes))
    assert caught.value.obj == path and message in str(caught.value), str(caught.value)


def _attribute(nla_type: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), nla_type) + value + b"\0" * (-(4 + len(value)) % 4)


def test_the_decoder_reads_a_vxlans_info_data() -> None:
    data = b"".join([_attribute(c.IFLA_VXLAN_ID, struct.pack("=I", 42)),
                     _attribute(c.IFLA_VXLAN_GROUP6, socket.inet_pton(socket.AF_INET6, "2001:db8::2")),
                     _attribute(c.IFLA_VXLAN_LINK, struct.pack("=I", 7)),
                     _attribute(c.IFLA_VXLAN_LOCAL6, socket.inet_pton(socket.AF_INET6, "2001:db8::1")),
                     _attribute(c.IFLA_VXLAN_PORT, struct.pack("!H", 4789))])
    info = _attribute(c.IFLA_INFO_KIND, b"vxlan\0") + _attribute(c.IFLA_INFO_DATA | 0x8000, data)
    body = c.IFINFOMSG.pack(0, 1, 12, 0, 0) + _attribute(c.IFLA_IFNAME, b"vx0\0") + _attribute(c.IFLA_MTU, struct.pack(
        "=I", 1450)) + _attribute(c.IFLA_LINKINFO | 0x8000, info) + _attribute(c.IFLA_LINK_NETNSID, struct.pack("=i", 3))
    message = c.HEADER.pack(c.HEADER.size + len(body), c.RTM_NEWLINK, 0, 0, 0) + body
    link = _link_from_msg(decode("links", message))
    assert (link.kind, link.peer_nsid) == ("vxlan", 3)
    assert link.vxlan == VxlanAttributes(vni=42, group="2001:db8::2", local="2001:db8::1", dev=7, port=4789)


def test_the_data_of_other_kinds_is_not_decoded() -> None:
    info = _attribute(c.IFLA_INFO_KIND, b"vlan\0") + _attribute(c.IFLA_INFO_DATA, _attribute(1, struct.pack("=H", 5)))
    body = c.IFINFOMSG.pack(0, 1, 12, 0, 0) + _attribute(c.IFLA_IFNAME, b"v5\0") + _attribute(c.IFLA_LINKINFO, info)
    link = _link_from_msg(decode("links", c.HEADER.pack(c.HEADER.size + len(body), c.RTM_NEWLINK, 0, 0, 0) + body))
    assert link.kind == "vlan" and link.vxlan is None


def _info_link(name: str, kind: str, **extra: Any) -> Dict[str, Any]:
    return dict({"name": name, "kind": kind, "mtu": 1500, "mac": None, "state": "up", "index": 1, "master": None,
                 "peer": None, "parent": None}, **extra)


def test_netns_info_captures_a_vxlan_into_a_spec_that_validates() -> None:
    vxlan = {"id": 42, "remote": "192.0.2.2", "local": "192.0.2.1", "dev": "eth0", "port": 4789, "underlay_netns": "host1"}
    info = {"namespaces": [
        {"name": "host1", "links": [_info_link("eth0", "veth", peer={"netns": "host2", "name": "eth0"})],
         "addresses": [], "routes": [], "rules": [], "sysctls": {}},
        {"name": "host2", "links": [_info_link("eth0", "veth", peer={"netns": "host1", "name": "eth0"})],
         "addresses": [], "routes": [], "rules": [], "sysctls": {}},
        {"name": "tenant", "links": [_info_link("vx0", "vxlan", mtu=1450, vxlan=vxlan)],
         "addresses": [], "routes": [], "rules": [], "sysctls": {}}],
        "host": {"links": [], "addresses": [], "routes": [], "rules": [], "sysctls": {}}}
    spec = spec_from_info(info)
    captured = [item for item in spec["links"] if item["type"] == "vxlan"]
    assert captured == [dict({"type": "vxlan", "name": "vx0", "netns": "tenant", "mtu": 1450}, **vxlan)]
    parse_topology(spec)
    on_root = dict(vxlan, dev="eno1", underlay_netns=None)
    info["namespaces"][2]["links"][0]["vxlan"] = on_root
    captured = [item for item in spec_from_info(info)["links"] if item["type"] == "vxlan"]
    assert captured == [{"type": "vxlan", "name": "vx0", "netns": "tenant", "mtu": 1450, "id": 42, "remote": "192.0.2.2",
                         "local": "192.0.2.1", "dev": "eno1", "port": 4789}]
    info["namespaces"][2]["links"][0]["vxlan"] = dict(vxlan, underlay_netns="(another namespace)")  # not found: not captured
    assert [item for item in spec_from_info(info)["links"] if item["type"] == "vxlan"] == []


def test_the_picture_draws_a_vxlan_from_its_underlay() -> None:
    text = to_mermaid(SPEC)
    assert "vxlan 42" in text and "root namespace" not in text
    assert "root namespace" in to_mermaid(with_vxlan(underlay_netns=None, dev="eno1"))


def test_the_boot_restore_waits_for_a_root_namespace_underlay_device() -> None:
    root = with_vxlan(underlay_netns=None, dev="eno1")
    assert [root_parent(item) for item in root["links"]] == ["eno1", None]
    assert root_parent(SPEC["links"][0]) is None  # its dev is a declared link of host1
    reduced, skipped = without_parents(root, ["eno1"])
    assert [item["name"] for item in reduced["links"]] == ["eth0"] and skipped
