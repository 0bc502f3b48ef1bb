# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridges (with ports), vlans and macvlans in any namespace.

A vlan or macvlan is created on its parent's socket with IFLA_NET_NS_FD, so it appears directly in
its target namespace (one request, never create-then-move).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import ns_label, refusal
from ..model import Change, Kind, Params, Pending, Undo, params_of
from ..system import thread_netns
from .link import Link, delete_link, index_of, link_key, links, plan_link_attributes


@dataclasses.dataclass(frozen=True)
class VirtualLinkSpec:
    link_type: str  # bridge | vlan | macvlan
    netns: Optional[str]
    name: str
    parent: Optional[str] = None  # vlan/macvlan: the lower device
    parent_netns: Optional[str] = None
    vlan_id: Optional[int] = None
    macvlan_mode: Optional[str] = None
    ports: tuple = ()  # bridge: names of links in the bridge's namespace
    mtu: Optional[int] = None
    mac: Optional[str] = None
    up: Optional[bool] = True
    state: str = "present"
    field: str = dataclasses.field(default="link", compare=False)  # where it is declared


def virtual_link_spec(item: Dict[str, Any]) -> VirtualLinkSpec:
    """From a validated topology link entry (see topology_spec)."""
    return VirtualLinkSpec(
        link_type=item["type"], netns=item.get("netns"), name=item["name"],
        parent=item.get("parent"), parent_netns=item.get("parent_netns"), vlan_id=item.get("id"),
        macvlan_mode=item.get("mode"), ports=tuple(item.get("ports") or ()), mtu=item.get("mtu"),
        mac=item.get("mac"), up=item.get("up", True), field=item.get("path", "link"),
    )


def _mismatch(spec: VirtualLinkSpec, current: Link) -> Optional[str]:
    if current.kind != spec.link_type:
        return "exists as a %s link, not a %s" % (current.kind or "physical/loopback", spec.link_type)
    return None


def plan_virtual_link(kernel: Kernel, spec: VirtualLinkSpec, pending: Pending) -> List[Change]:
    key = link_key(spec.netns, spec.name)
    if spec.state == "absent":
        return plan_virtual_link_absent(kernel, spec)
    if not kernel.exists(spec.netns) and not pending.has_namespace(spec.netns):
        raise NetnsError("namespace %s does not exist" % spec.netns, obj="link " + key)
    current = links(kernel, spec.netns).get(spec.name)
    pending.note_link(spec.netns, spec.name, spec.mtu, spec.up)
    changes: List[Change] = []
    if current is not None:
        problem = _mismatch(spec, current)
        if problem:
            raise NetnsError(problem + "; refusing to change it", obj="link " + key)
    else:
        refuse_a_new_namespaces_own_name(kernel, spec.netns, spec.name, spec.field)
        changes.append(_plan_create(kernel, spec, pending))
        pending.links.add((spec.netns, spec.name))
    changes += plan_link_attributes(spec.netns, spec.name, current, spec.mtu, spec.mac, spec.up)
    if spec.link_type == "bridge":
        changes += _plan_ports(kernel, spec, current)
    return changes


def refuse_a_new_namespaces_own_name(kernel: Kernel, netns: Optional[str], name: str, field: str) -> None:
    """A link to create in a namespace the plan creates cannot have a name the kernel gives a link of
    every new namespace (a tunnel module's fallback device)."""
    if not kernel.exists(netns) and name in thread_netns.links_of_a_new_namespace():
        raise NetnsError("every new namespace has a link %s already (the kernel makes it); choose another name"
                         % name, obj=field + ".name")


def _plan_create(kernel: Kernel, spec: VirtualLinkSpec, pending: Pending) -> Change:
    params = VirtualLinkParams(spec.link_type, spec.netns, spec.name, spec.mtu, spec.mac)
    after: Dict[str, Any] = {"type": spec.link_type}
    if spec.link_type in ("vlan", "macvlan"):
        parent_ns = spec.parent_netns
        have_parent = spec.parent in links(kernel, parent_ns) if kernel.exists(parent_ns) else False
        if not have_parent and not pending.has_link(parent_ns, spec.parent):
            raise NetnsError("parent device %s does not exist in the %s" % (spec.parent, ns_label(parent_ns)),
                             obj="link " + link_key(spec.netns, spec.name))
        params = dataclasses.replace(params, parent=spec.parent, parent_ns=parent_ns, vlan_id=spec.vlan_id,
                                     mode=spec.macvlan_mode)
        after.update(parent=spec.parent, id=spec.vlan_id, mode=spec.macvlan_mode)
    return Change("link", "create", link_key(spec.netns, spec.name), None,
                  {k: v for k, v in after.items() if v is not None}, params=params)


def _plan_ports(kernel: Kernel, spec: VirtualLinkSpec, bridge: Optional[Link]) -> List[Change]:
    present = links(kernel, spec.netns) if kernel.exists(spec.netns) else {}
    changes = []
    for port in spec.ports:
        current = present.get(port)
        if bridge is not None and current is not None and current.master == bridge.index:
            continue
        changes.append(Change("link", "update", link_key(spec.netns, port),
                              {"master": None if current is None or current.master is None else current.master},
                              {"master": spec.name},
                              params=BridgePort(spec.netns, port, spec.name)))
    return changes


def plan_virtual_link_absent(kernel: Kernel, spec: VirtualLinkSpec) -> List[Change]:
    current = links(kernel, spec.netns).get(spec.name) if kernel.exists(spec.netns) else None
    if current is None:
        return []
    problem = _mismatch(spec, current)
    if problem:
        raise NetnsError(problem + "; refusing to delete it", obj="link " + link_key(spec.netns, spec.name))
    return [Change("link", "delete", link_key(spec.netns, spec.name), current.as_dict(), None,
                   params=VirtualLinkParams(spec.link_type, spec.netns, spec.name))]


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VirtualLinkParams(Params):
    link_type: str
    ns: Optional[str]
    name: str
    mtu: Optional[int] = None
    mac: Optional[str] = None
    parent: Optional[str] = None  # vlan/macvlan: the lower device, in parent_ns
    parent_ns: Optional[str] = None
    vlan_id: Optional[int] = None
    mode: Optional[str] = None  # macvlan
    index: Optional[int] = None  # a deletion planned by identity: this ifindex, whatever its name now


@dataclasses.dataclass(frozen=True)
class BridgePort(Params):
    ns: Optional[str]
    name: str
    master: str


class VirtualLinkKind(Kind):
    name = "link"
    params = (VirtualLinkParams,)
    spec = VirtualLinkSpec
    read = staticmethod(links)
    plan = staticmethod(plan_virtual_link)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = params_of(change, VirtualLinkParams)
        if change.action == "create":
            _create(kernel, change.key, params)
        else:
            delete_link(kernel, params.ns, params.name, params.index, "delete", "link " + change.key)

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, VirtualLinkParams)
        if change.action == "create":
            return self.replay(Change("link", "delete", change.key,
                                      params=VirtualLinkParams(params.link_type, params.ns, params.name)))
        return None  # a deleted link's addresses and ports are gone with it


def _create(kernel: Kernel, key: str, params: VirtualLinkParams) -> None:
    attrs: Dict[str, Any] = {}
    socket_ns = params.ns
    if params.link_type in ("vlan", "macvlan"):
        if params.parent is None:
            raise NetnsError("internal error: a %s without its parent device" % params.link_type, obj="link " + key)
        socket_ns = params.parent_ns
        attrs["link"] = index_of(kernel, socket_ns, params.parent)
        if params.link_type == "vlan":
            attrs["vlan_id"] = params.vlan_id
        else:
            attrs["macvlan_mode"] = params.mode
    create_link(kernel, key, params, socket_ns, attrs)


def create_link(kernel: Kernel, key: str, params: VirtualLinkParams, socket_ns: Optional[str],
                attrs: Dict[str, Any]) -> None:
    """Create ``params``' link with its type's ``attrs`` on ``socket_ns``'s socket: with
    IFLA_NET_NS_FD it appears directly in its own namespace, and keeps ``socket_ns`` as its link
    namespace (where a vlan's parent is, or a vxlan's UDP socket)."""
    attrs = dict(attrs, ifname=params.name, kind=params.link_type)
    if params.mtu:
        attrs["mtu"] = params.mtu
    if params.mac:
        attrs["address"] = params.mac
    if socket_ns != params.ns:
        attrs["net_ns_fd"] = kernel.fd(params.ns)
    with refusal("create %s" % params.link_type, "link " + key):
        kernel.netlink.requests(socket_ns).link("add", **attrs)
    kernel.cache.invalidate(params.ns, "links")


class BridgePortKind(Kind):
    """A link made a port of a declared bridge (planned with the bridge)."""

    name = "link"
    params = (BridgePort,)

    def apply(self, kernel: Kernel, change: Change) -> None:
        port = params_of(change, BridgePort)
        with refusal("attach to bridge %s" % port.master, "link " + change.key):
            kernel.netlink.requests(port.ns).link("set", index=index_of(kernel, port.ns, port.name),
                                                  master=index_of(kernel, port.ns, port.master))
        kernel.cache.invalidate(port.ns, "links")

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        port = params_of(change, BridgePort)
        old_master = (change.before or {}).get("master")  # an ifindex, or None for no bridge

        def detach(kernel_: Kernel) -> None:
            index = index_of(kernel_, port.ns, port.name)
            kernel_.netlink.requests(port.ns).link("set", index=index, master=old_master or 0)
            kernel_.cache.invalidate(port.ns, "links")
        return detach


VIRTUAL_LINK = VirtualLinkKind()
BRIDGE_PORT = BridgePortKind()
