"""Table-driven tests of the host devices' (``type: device``) validation and planner, on a kernel
faked by its links per namespace."""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, List, Optional, Set

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine import ownership
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel.cache import ReadCache
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.device import (
    DeviceMove,
    Placement,
    plan_device,
    plan_renames,
    plan_return,
    with_placements,
)
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.link import Link
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.model import Pending
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.report.graph import to_dot, to_mermaid
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.report.info import spec_from_info
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology

MAC = "02:00:00:00:00:0a"


def link(index: int, name: str, mac: Optional[str] = MAC, kind: Optional[str] = None, up: bool = True,
         peer: Optional[int] = None, master: Optional[int] = None) -> Link:
    return Link(index, name, kind, 1500, mac, up, peer, None, master)


class FakeKernel:
    """Only what the device planner reads: links per namespace (None: root), identities."""

    def __init__(self, links: Dict[Optional[str], List[Link]]) -> None:
        self.cache = ReadCache()
        for ns, items in links.items():
            self.cache.get(ns, "links", lambda _ns, items=items: {item.name: item for item in items})

    def exists(self, ns: Optional[str]) -> bool:
        return ns is None or ns in self.namespaces()

    def namespaces(self) -> Set[str]:
        return {ns for ns in self.cache._entries if ns is not None}

    def identity(self, ns: Optional[str]) -> List[Any]:
        return ["cookie", 7 if ns == "edge" else 1]


def topology(*devices: Dict[str, Any], links: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    return {"name": "t", "namespaces": [{"name": "edge"}, {"name": "b"}],
            "links": [dict({"type": "device", "name": "ext0", "netns": "edge"}, **d) for d in devices] + (links or [])}


BAD = [
    ({"match": {"name": "eth0"}, "netns": None}, "links[0].netns", "moved into a namespace"),
    ({"match": {"name": "eth0"}, "netns": "zz"}, "links[0].netns", "not declared"),
    ({}, "links[0].match", "must be a mapping"),
    ({"match": {}}, "links[0].match", "exactly one of name or mac, not none"),
    ({"match": {"name": "eth0", "mac": MAC}}, "links[0].match", "not mac and name"),
    ({"match": {"ifname": "eth0"}}, "links[0].match", "unknown key(s) ifname"),
    ({"match": {"name": "lo"}}, "links[0].match.name", "loopback"),
    ({"match": {"name": "a/b"}}, "links[0].match.name", ""),
    ({"match": {"mac": "01:00:00:00:00:01"}}, "links[0].match.mac", "multicast"),
    ({"match": {"mac": "00:00:00:00:00:00"}}, "links[0].match.mac", "all-zero"),
    ({"match": {"mac": "nope"}}, "links[0].match.mac", "not a MAC"),
    ({"match": {"name": "eth0"}, "name": "lo"}, "links[0].name", ""),
    ({"match": {"name": "eth0"}, "peer": "x"}, "links[0]", "unknown key(s) peer"),
    ({"match": {"name": "eth0"}, "mtu": 10}, "links[0].mtu", "out of range"),
]


@pytest.mark.parametrize("entry,where,words", BAD)
def test_bad_device_entry_names_its_path(entry: Dict[str, Any], where: str, words: str) -> None:
    with pytest.raises(NetnsError) as caught:
        parse_topology(topology(entry))
    assert caught.value.obj == where and words in caught.value.message


def test_two_entries_for_one_device_and_a_declared_root_link_are_refused() -> None:
    with pytest.raises(NetnsError) as caught:
        parse_topology(topology({"match": {"mac": MAC.upper()}}, {"name": "ext1", "match": {"mac": MAC}}))
    assert caught.value.obj == "links[1].match.mac" and "same device as links[0].match.mac" in caught.value.message
    with pytest.raises(NetnsError) as caught:
        veth = {"type": "veth", "name": "v0", "peer": "v1", "peer_netns": "b"}
        parse_topology(topology({"match": {"name": "v0"}}, links=[veth]))
    assert caught.value.obj == "links[0].match.name" and "declared by this topology" in caught.value.message


def test_mac_is_normalised_and_a_macvlan_on_the_device_comes_after_it() -> None:
    parsed = parse_topology(topology({"match": {"mac": MAC.upper()}}, links=[]))
    assert parsed.links[0]["match"] == {"mac": MAC}
    spec = topology({"match": {"name": "eth0"}})
    spec["links"].insert(0, {"type": "macvlan", "name": "mv0", "netns": "edge", "parent": "ext0", "parent_netns": "edge"})
    assert [item["name"] for item in parse_topology(spec).links] == ["ext0", "mv0"]


def device(entry: Dict[str, Any], placements: Optional[Dict[Any, Placement]] = None, extra: Any = None) -> Any:
    parsed = parse_topology(topology(dict({"match": {"name": "eth0"}}, **entry), links=extra))
    return with_placements(parsed.link_specs, placements or {})[0]


def test_a_device_in_the_root_namespace_is_moved_renamed_and_brought_up() -> None:
    kernel = FakeKernel({None: [link(1, "lo", None), link(5, "eth0")], "edge": [link(1, "lo", None)]})
    changes = plan_device(kernel, device({"mtu": 1400}), Pending())
    assert [(c.action, c.key) for c in changes] == [("move", "ext0 in netns edge"), ("update", "ext0 in netns edge")]
    move = changes[0].params
    assert move == DeviceMove(5, None, "edge", "ext0", "eth0", "eth0", True)
    assert changes[1].after == {"mtu": 1400, "state": "up"}


def test_in_place_by_identity_or_mac_plans_nothing_and_by_name_alone_is_not_trusted() -> None:
    placed = {("edge", "ext0"): Placement("eth0", [["cookie", 7], 5], True)}
    kernel = FakeKernel({None: [link(1, "lo", None)], "edge": [link(5, "ext0")]})
    assert plan_device(kernel, device({}, placed), Pending()) == []
    assert plan_device(kernel, device({"match": {"mac": MAC}}), Pending()) == []
    with pytest.raises(NetnsError) as caught:  # a same-named link there may be anything
        plan_device(kernel, device({}), Pending())
    assert "no device named eth0" in caught.value.message


def test_renamed_inside_it_is_named_again_keeping_its_original_name() -> None:
    placed = {("edge", "ext0"): Placement("eth0", [["cookie", 7], 5], True)}
    kernel = FakeKernel({None: [link(1, "lo", None)], "edge": [link(5, "other0", up=False)]})
    changes = plan_device(kernel, device({}, placed), Pending())
    assert changes[0].action == "rename" and changes[0].params.original == "eth0"
    assert changes[1].after == {"state": "up"}


@pytest.mark.parametrize("root,entry,where,words", [
    ([link(5, "a", MAC), link(6, "b", MAC)], {"match": {"mac": MAC}}, "links[0].match.mac", "matches several links"),
    ([link(1, "eth0", None)], {}, "links[0].match", "loopback"),
    ([link(5, "eth0", kind="veth", peer=6), link(6, "v1", kind="veth", peer=5)], "veth", "links[0].match",
     "veth whose peer v1 in root namespace"),
    ([link(5, "eth0"), link(6, "ext0")], {"netns": "b"}, "links[0].name", "has a link ext0 already"),
    ([link(5, "eth0", master=6), link(6, "br0", kind="bridge")], {}, "links[0].match", "port of br0"),
])
def test_refusals(root: List[Link], entry: Any, where: str, words: str) -> None:
    extra = None
    if entry == "veth":
        entry, extra = {}, [{"type": "veth", "name": "v1", "peer": "v2", "peer_netns": "b"}]
    kernel = FakeKernel({None: root, "edge": [], "b": [link(9, "ext0")]})
    with pytest.raises(NetnsError) as caught:
        plan_device(kernel, device(entry, extra=extra), Pending())
    assert caught.value.obj == where and words in caught.value.message


def test_a_device_in_another_namespace_and_a_missing_one() -> None:
    kernel = FakeKernel({None: [], "edge": [], "b": [link(9, "x")]})
    with pytest.raises(NetnsError) as caught:
        plan_device(kernel, device({"match": {"mac": MAC}}), Pending())
    assert "is in namespace b" in caught.value.message
    with pytest.raises(NetnsError) as caught:
        plan_device(kernel, device({}), Pending())
    assert caught.value.obj == "link ext0 in netns edge" and caught.value.errno == 19


def test_two_entries_resolving_to_one_device() -> None:
    kernel = FakeKernel({None: [link(5, "eth0")], "edge": []})
    pending = Pending()
    first, second = parse_topology(topology({"match": {"name": "eth0"}}, {"name": "ext1", "match": {"mac": MAC}})).link_specs
    plan_device(kernel, first, pending)
    with pytest.raises(NetnsError) as caught:
        plan_device(kernel, second, pending)
    assert "same device as links[0]" in caught.value.message


def test_the_return_goes_to_the_original_name_and_state() -> None:
    kernel = FakeKernel({None: [], "edge": [link(5, "ext0", up=False)]})
    placement = Placement("eth0", [["cookie", 7], 5], True)
    (change,) = plan_return(kernel, ("edge", "ext0"), placement)
    assert change.params == DeviceMove(5, "edge", None, "eth0", "ext0", "eth0", True)
    assert plan_return(kernel, ("edge", "ext0"), Placement("eth0", [["cookie", 8], 5], True)) == []  # not ours
    taken = FakeKernel({None: [link(3, "eth0")], "edge": [link(5, "ext0")]})
    with pytest.raises(NetnsError) as caught:
        plan_return(taken, ("edge", "ext0"), placement)
    assert "has a link eth0 now" in caught.value.message


def test_the_record_round_trips_placements() -> None:
    record = ownership.Record(copy.deepcopy(topology({"match": {"name": "eth0"}})), "boot")
    record.devices[("edge", "ext0")] = Placement("eth0", [["cookie", 7], 5], True)
    again = ownership._from_json(json.loads(record.as_json()))
    assert again.devices == record.devices and again.devices[("edge", "ext0")].identity == [["cookie", 7], 5]
    assert "devices" not in json.loads(ownership.Record({"name": "x"}, "boot").as_json())


def test_netns_info_captures_a_nic_in_a_namespace_as_a_device_by_mac_and_the_graph_draws_it() -> None:
    nic = {"name": "ext0", "kind": None, "mtu": 1400, "mac": MAC, "state": "up", "index": 5, "master": None,
           "peer": None, "parent": None}
    lo = dict(nic, name="lo", mac="00:00:00:00:00:00", mtu=65536, index=1)
    edge = {"name": "edge", "links": [lo, nic], "addresses": [{"dev": "ext0", "address": "10.0.0.2/24"}], "routes": [],
            "sysctls": {}, "nameservers": None, "iptables": {"ipv4": {}, "ipv6": {}}}
    host = dict(edge, name="", links=[lo], addresses=[])
    captured = spec_from_info({"namespaces": [edge], "host": host, "anonymous": []}, "cap")
    assert captured["links"] == [{"type": "device", "name": "ext0", "netns": "edge", "match": {"mac": MAC}, "mtu": 1400}]
    assert captured["namespaces"][0]["addresses"] == [{"dev": "ext0", "address": "10.0.0.2/24"}]
    assert parse_topology(captured).links[0]["match"] == {"mac": MAC}
    spec = topology({"match": {"name": "eth0"}})
    assert 'ns0 -- ns1 [label="device\\neth0\\next0"]' in to_dot(spec)
    assert '|"device: eth0 — ext0"|' in to_mermaid(spec)


def test_a_bridge_or_vlan_carrying_the_mac_is_not_the_device() -> None:
    kernel = FakeKernel({None: [link(5, "eth0"), link(7, "br9", kind="bridge")],
                         "edge": [link(6, "ext0"), link(8, "ext0.5", kind="vlan", peer=6)]})
    assert plan_device(kernel, device({"match": {"mac": MAC}}), Pending()) == []  # in place, not "several"
    moving = FakeKernel({None: [link(5, "eth0"), link(7, "br9", kind="bridge")], "edge": []})
    assert plan_device(moving, device({"match": {"mac": MAC}}), Pending())[0].params.index == 5


def test_the_rename_is_a_stage_of_its_own_and_the_plan_after_it_in_check_mode_does_not_repeat_it() -> None:
    placed = {("edge", "ext0"): Placement("eth0", [["cookie", 7], 5], True)}
    kernel = FakeKernel({None: [link(1, "lo", None)], "edge": [link(5, "other0", up=False)]})
    pending = Pending()
    specs = parse_topology(topology({"match": {"name": "eth0"}})).link_specs
    (rename,) = plan_renames(kernel, specs, placed, pending)
    assert (rename.action, rename.before["name"], rename.params.original) == ("rename", "other0", "eth0")
    later = plan_device(kernel, with_placements(specs, placed)[0], pending)
    assert [(c.action, c.after) for c in later] == [("update", {"state": "up"})]
