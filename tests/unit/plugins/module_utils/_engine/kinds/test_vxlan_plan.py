"""Table-driven tests of the vxlan planner on a kernel as read (no netlink): create, nothing to do,
replace the topology's own, refuse a foreign one naming what differs, refuse what is no vxlan."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.link import Link, VxlanAttributes
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.vxlan import VxlanSpec, plan_vxlan
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.model import Pending

UNDERLAY_NSID = 3  # the id the tenant has for the underlay


class Cache:
    def __init__(self, links: Dict[Optional[str], Dict[str, Link]]) -> None:
        self.links = links

    def get(self, ns: Optional[str], what: str, read: Callable[[Optional[str]], Any]) -> Any:
        assert what == "links"
        return self.links.get(ns, {})


class Kernel:
    """The namespaces and links a plan reads, and the one namespace id it asks for."""

    def __init__(self, links: Dict[Optional[str], Dict[str, Link]], namespaces: Set[str]) -> None:
        self.cache = Cache(links)
        self._namespaces = namespaces

    def exists(self, ns: Optional[str]) -> bool:
        return ns is None or ns in self._namespaces

    def namespaces(self) -> Set[str]:
        return set(self._namespaces)

    def nsid(self, ns_from: Optional[str], ns_target: Optional[str]) -> Optional[int]:
        return UNDERLAY_NSID if (ns_from, ns_target) == ("tenant", "host1") else None


def link(name: str, index: int, kind: Optional[str] = "vxlan", nsid: Optional[int] = UNDERLAY_NSID,
         **vxlan: Any) -> Link:
    data = dict({"vni": 42, "group": "192.0.2.2", "local": None, "dev": 2, "port": 4789}, **vxlan)
    return Link(index, name, kind, 1450, "02:00:00:00:00:01", True, None, nsid, None,
                VxlanAttributes(**data) if kind == "vxlan" else None)


UNDERLAY = {"eth0": Link(2, "eth0", "veth", 1500, None, True, 9, 1, None)}
SPEC = VxlanSpec("tenant", "vx0", 42, remote="192.0.2.2", dev="eth0", underlay_netns="host1")


def plan(current: Optional[Link], spec: VxlanSpec = SPEC, owned: bool = False,
         doomed: bool = False) -> List[Tuple[str, str, Dict[str, Any]]]:
    kernel = Kernel({"host1": UNDERLAY, "tenant": {} if current is None else {"vx0": current}}, {"host1", "tenant"})
    pending = Pending(owns_link=lambda key: owned and key == ("tenant", "vx0"))
    if doomed:
        pending.doomed_links.add(("tenant", "vx0"))
    return [(c.action, c.key, c.after or c.before or {}) for c in plan_vxlan(kernel, spec, pending)]  # type: ignore[arg-type]


CREATED = {"type": "vxlan", "id": 42, "remote": "192.0.2.2", "dev": "eth0", "port": 4789, "underlay_netns": "host1"}


@pytest.mark.parametrize("current,spec,owned,expected", [
    (None, SPEC, False, [("create", "vx0 in netns tenant", CREATED), ("update", "vx0 in netns tenant", {"state": "up"})]),
    (link("vx0", 5), SPEC, False, []),
    (link("vx0", 5), dataclasses.replace(SPEC, mtu=1400), False,
     [("update", "vx0 in netns tenant", {"mtu": 1400})]),
    (link("vx0", 5, vni=7), SPEC, True,
     [("delete", "vx0 in netns tenant", dict(CREATED, id=7)), ("create", "vx0 in netns tenant", CREATED),
      ("update", "vx0 in netns tenant", {"state": "up"})]),
    (link("vx0", 5, port=8472), SPEC, True,
     [("delete", "vx0 in netns tenant", dict(CREATED, port=8472)), ("create", "vx0 in netns tenant", CREATED),
      ("update", "vx0 in netns tenant", {"state": "up"})]),
    (link("vx0", 5, group="239.1.1.1"), SPEC, True,
     [("delete", "vx0 in netns tenant", {"type": "vxlan", "id": 42, "group": "239.1.1.1", "dev": "eth0", "port": 4789,
                                         "underlay_netns": "host1"}),
      ("create", "vx0 in netns tenant", CREATED), ("update", "vx0 in netns tenant", {"state": "up"})]),
])
def test_plan_vxlan(current: Optional[Link], spec: VxlanSpec, owned: bool, expected: list) -> None:
    assert plan(current, spec, owned) == expected


@pytest.mark.parametrize("current,message", [
    (link("vx0", 5, vni=7), "exists with id 7 (declared 42), which cannot be changed in place; it is not this "
                            "topology's vxlan: refusing to replace it"),
    (link("vx0", 5, local="192.0.2.1"), "local 192.0.2.1 (declared none)"),
    (link("vx0", 5, dev=None), "dev none (declared eth0)"),
    (link("vx0", 5, nsid=None), "dev 2 (declared eth0), underlay_netns (another namespace) (declared host1)"),
    (link("vx0", 5, kind="veth"), "exists as a veth link, not a vxlan; refusing to change it"),
    (link("vx0", 5, kind=None), "exists as a physical/loopback link, not a vxlan"),
])
def test_a_foreign_or_other_link_is_refused(current: Link, message: str) -> None:
    with pytest.raises(NetnsError) as caught:
        plan(current)
    assert caught.value.obj == "link vx0 in netns tenant" and message in str(caught.value), str(caught.value)


def test_a_link_the_plan_deletes_is_created_anew() -> None:
    assert [action for action, _key, _after in plan(link("vx0", 5, kind="veth"), doomed=True)] == ["create", "update"]


@pytest.mark.parametrize("spec,message", [
    (dataclasses.replace(SPEC, dev="eth9"), "underlay device eth9 does not exist in the netns host1"),
    (dataclasses.replace(SPEC, underlay_netns="host9"), "namespace host9 does not exist"),
    (dataclasses.replace(SPEC, netns="tenant9"), "namespace tenant9 does not exist"),
])
def test_what_a_vxlan_needs_must_be_there(spec: VxlanSpec, message: str) -> None:
    with pytest.raises(NetnsError) as caught:
        plan(None, spec)
    assert message in str(caught.value), str(caught.value)


def test_absent_deletes_only_a_vxlan() -> None:
    assert [a for a, _k, _x in plan(link("vx0", 5), dataclasses.replace(SPEC, state="absent"))] == ["delete"]
    assert plan(None, dataclasses.replace(SPEC, state="absent")) == []
    with pytest.raises(NetnsError):
        plan(link("vx0", 5, kind="veth"), dataclasses.replace(SPEC, state="absent"))
