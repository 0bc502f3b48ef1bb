# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vxlan links: the overlay in its namespace, the UDP socket on its underlay.

A vxlan is created on its underlay namespace's socket (the root namespace, or ``underlay_netns``)
with IFLA_NET_NS_FD of its own namespace, one request through the path vlans and macvlans take:
the kernel keeps the creating namespace as the vxlan's link namespace, where its UDP socket and
its ``dev`` are. Its id, remote or group, local address, dev and port cannot be changed in place:
a vxlan this topology created is replaced (deleted and created again), any other is refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import ns_label
from ..model import Change, Kind, Pending, Undo, params_of
from ..validation import IPAddress, check_ifname, check_int, parse_address
from .link import Link, delete_link, index_of, link_key, links, plan_link_attributes
from .virtual_link import (VirtualLinkParams, VirtualLinkSpec, create_link, plan_virtual_link_absent,
                           refuse_a_new_namespaces_own_name)

VNI_MAX = 2 ** 24 - 1
DEFAULT_PORT = 4789  # IANA's; the kernel's own default is 8472 (Linux's before IANA assigned one)
KEYS = {"type", "name", "netns", "underlay_netns", "id", "remote", "group", "local", "dev", "port", "mtu", "mac", "up"}
# what cannot change in place, as the spec and a diff name it
FIXED = ("id", "remote", "group", "local", "dev", "port", "underlay_netns")
ELSEWHERE = "(another namespace)"  # the underlay of a vxlan whose link namespace is not the one looked for


# -- the spec ------------------------------------------------------------------------------
def parse_vxlan(item: Dict[str, Any], where: str) -> None:
    """Check and normalise a topology's vxlan entry ``item`` (at ``where``) in place; its name,
    netns, underlay_netns, mtu, mac and up are checked as every link's."""
    item["id"] = check_int(item.get("id"), where + ".id", 0, VNI_MAX)
    if item["id"] is None:
        raise NetnsError("a vxlan needs an id (0..%d)" % VNI_MAX, obj=where + ".id")
    item["port"] = check_int(item.get("port"), where + ".port", 1, 65535) or DEFAULT_PORT
    if item.get("dev") is not None:
        check_ifname(item["dev"], where + ".dev")
    peer = _parse_peer(item, where)
    local = None if item.get("local") is None else _parse_local(item["local"], peer, where)
    if local is not None:
        item["local"] = str(local)
    link_local = next((ip for ip in (peer, local) if ip is not None and ip.is_link_local), None)
    if link_local is not None and item.get("dev") is None:
        raise NetnsError("the link-local address %s needs the underlay device (dev) it is on" % link_local,
                         obj=where + ".dev")


def _parse_peer(item: Dict[str, Any], where: str) -> IPAddress:
    """The one of remote (unicast) and group (multicast, on a dev) that is given, normalised."""
    if (item.get("remote") is None) == (item.get("group") is None):
        raise NetnsError("a vxlan needs either a remote (one peer) or a multicast group, not %s"
                         % ("both" if item.get("remote") is not None else "neither"), obj=where)
    field = "remote" if item.get("remote") is not None else "group"
    peer = parse_address(item[field], "%s.%s" % (where, field))
    if field == "group" and not peer.is_multicast:
        raise NetnsError("%s is not a multicast address" % peer, obj=where + ".group")
    if field == "group" and item.get("dev") is None:
        raise NetnsError("a multicast group needs the underlay device (dev) to join it on", obj=where + ".dev")
    if field == "remote" and (peer.is_multicast or peer.is_unspecified):
        raise NetnsError("%s is not a unicast address (a multicast one is a group)" % peer, obj=where + ".remote")
    item[field] = str(peer)
    return peer


def _parse_local(value: Any, peer: IPAddress, where: str) -> IPAddress:
    local = parse_address(value, where + ".local")
    if local.version != peer.version:
        raise NetnsError("local %s is IPv%d but the %s %s is IPv%d"
                         % (local, local.version, "group" if peer.is_multicast else "remote", peer, peer.version),
                         obj=where + ".local")
    if local.is_multicast or local.is_unspecified:
        raise NetnsError("%s is not a unicast address" % local, obj=where + ".local")
    return local


@dataclasses.dataclass(frozen=True)
class VxlanSpec:
    netns: Optional[str]
    name: str
    vni: int
    remote: Optional[str] = None  # the one peer, or
    group: Optional[str] = None  # a multicast group
    local: Optional[str] = None
    dev: Optional[str] = None  # in underlay_netns
    underlay_netns: Optional[str] = None  # None: the root namespace
    port: int = DEFAULT_PORT
    mtu: Optional[int] = None
    mac: Optional[str] = None
    up: Optional[bool] = True
    state: str = "present"
    field: str = dataclasses.field(default="link", compare=False)

    def config(self) -> Dict[str, Any]:
        """What it is created with, as a diff shows it."""
        values = {"id": self.vni, "remote": self.remote, "group": self.group, "local": self.local,
                  "dev": self.dev, "port": self.port, "underlay_netns": self.underlay_netns}
        return {key: value for key, value in values.items() if value is not None}


def vxlan_spec(item: Dict[str, Any]) -> VxlanSpec:
    """From a validated topology link entry (see parse_vxlan)."""
    return VxlanSpec(
        netns=item.get("netns"), name=item["name"], vni=item["id"], remote=item.get("remote"),
        group=item.get("group"), local=item.get("local"), dev=item.get("dev"),
        underlay_netns=item.get("underlay_netns"), port=item.get("port") or DEFAULT_PORT, mtu=item.get("mtu"),
        mac=item.get("mac"), up=item.get("up", True), field=item.get("path", "link"))


# -- reading -------------------------------------------------------------------------------
def on_underlay(kernel: Kernel, ns: Optional[str], link: Link, underlay: Optional[str]) -> bool:
    """Whether the vxlan ``link`` in ``ns`` has ``underlay`` as its link namespace (the kernel names
    it, by id, only when it is not ``ns`` itself)."""
    if underlay == ns:
        return link.peer_nsid is None
    return link.peer_nsid is not None and kernel.exists(underlay) and kernel.nsid(ns, underlay) == link.peer_nsid


def current_config(kernel: Kernel, ns: Optional[str], link: Link, underlay: Optional[str]) -> Dict[str, Any]:
    """``link``'s vxlan attributes as a spec names them, read with ``underlay`` taken for its link
    namespace when it is (else underlay_netns reads ELSEWHERE, and dev as its ifindex)."""
    data = link.vxlan
    if data is None:
        return {}
    known = on_underlay(kernel, ns, link, underlay)
    by_index = {other.index: name for name, other in links(kernel, underlay).items()} if known else {}
    peer = "group" if data.group and _is_multicast(data.group) else "remote"
    values = {"id": data.vni, peer: data.group, "local": data.local, "port": data.port,
              "dev": None if data.dev is None else by_index.get(data.dev, data.dev),
              "underlay_netns": underlay if known else ELSEWHERE}
    return {key: value for key, value in values.items() if value is not None}


def underlay_of(kernel: Kernel, ns: Optional[str], link: Link) -> Optional[Dict[str, Any]]:
    """The vxlan ``link``'s attributes with the name of its underlay namespace (searched by the id
    ``ns`` has for it; None: the root namespace), as netns_info reports them; None when it is no vxlan."""
    if link.vxlan is None:
        return None
    if link.peer_nsid is not None:  # another namespace than its own
        for candidate in [None] + sorted(kernel.namespaces()):
            try:
                if candidate != ns and on_underlay(kernel, ns, link, candidate):
                    return dict({"underlay_netns": None}, **current_config(kernel, ns, link, candidate))
            except NetnsError:
                continue  # someone else's namespace, deleted while we looked through them all
    # its own namespace, or one we cannot name (ELSEWHERE)
    return dict({"underlay_netns": None}, **current_config(kernel, ns, link, ns))


def _is_multicast(text: str) -> bool:
    return parse_address(text, "group").is_multicast


# -- planning ------------------------------------------------------------------------------
def plan_vxlan(kernel: Kernel, spec: VxlanSpec, pending: Pending) -> List[Change]:
    if spec.state == "absent":
        return plan_virtual_link_absent(kernel, VirtualLinkSpec("vxlan", spec.netns, spec.name, state="absent"))
    key = link_key(spec.netns, spec.name)
    for ns in (spec.netns, spec.underlay_netns):
        if not kernel.exists(ns) and not pending.has_namespace(ns):
            raise NetnsError("namespace %s does not exist" % ns, obj="link " + key)
    _check_dev(kernel, spec, pending)
    doomed = (spec.netns, spec.name) in pending.doomed_links
    current = None if doomed or not kernel.exists(spec.netns) else links(kernel, spec.netns).get(spec.name)
    pending.note_link(spec.netns, spec.name, spec.mtu, spec.up)
    changes: List[Change] = []
    if current is not None:
        changes += _plan_replacement(kernel, spec, current, pending)
        if changes:
            current = None  # the new one gets every declared attribute
    else:
        refuse_a_new_namespaces_own_name(kernel, spec.netns, spec.name, spec.field)
        changes.append(Change("link", "create", key, None, dict(spec.config(), type="vxlan"),
                              params=_params(spec)))
        pending.links.add((spec.netns, spec.name))
    return changes + plan_link_attributes(spec.netns, spec.name, current, spec.mtu, spec.mac, spec.up)


def _check_dev(kernel: Kernel, spec: VxlanSpec, pending: Pending) -> None:
    if spec.dev is None:
        return
    present = kernel.exists(spec.underlay_netns) and spec.dev in links(kernel, spec.underlay_netns)
    if not present and not pending.has_link(spec.underlay_netns, spec.dev):
        raise NetnsError("underlay device %s does not exist in the %s" % (spec.dev, ns_label(spec.underlay_netns)),
                         obj="link " + link_key(spec.netns, spec.name))


def _plan_replacement(kernel: Kernel, spec: VxlanSpec, current: Link, pending: Pending) -> List[Change]:
    """Nothing when ``current`` is the vxlan ``spec`` declares, else its deletion and the declared
    one's creation (only of a vxlan this topology created: any other link is refused)."""
    key = link_key(spec.netns, spec.name)
    if current.kind != "vxlan":
        raise NetnsError("exists as a %s link, not a vxlan; refusing to change it" % (current.kind or "physical/loopback"),
                         obj="link " + key)
    before = current_config(kernel, spec.netns, current, spec.underlay_netns)
    wanted = spec.config()
    differs = [name for name in FIXED if before.get(name) != wanted.get(name)]
    if not differs:
        return []
    what = ", ".join("%s %s (declared %s)" % (name, before.get(name, "none"), wanted.get(name, "none"))
                     for name in differs)
    if not pending.owns_link((spec.netns, spec.name)):
        raise NetnsError("exists with %s, which cannot be changed in place; it is not this topology's vxlan: "
                         "refusing to replace it" % what, obj="link " + key)
    deletion = VxlanParams("vxlan", spec.netns, spec.name, index=current.index)
    pending.doomed_links.add((spec.netns, spec.name))  # its addresses go with it: planned anew
    pending.links.add((spec.netns, spec.name))
    return [Change("link", "delete", key, dict(before, type="vxlan"), None, params=deletion),
            Change("link", "create", key, None, dict(wanted, type="vxlan"), params=_params(spec))]


def _params(spec: VxlanSpec) -> "VxlanParams":
    return VxlanParams("vxlan", spec.netns, spec.name, parent=spec.dev, parent_ns=spec.underlay_netns, vni=spec.vni,
                       remote=spec.remote or spec.group, local=spec.local, port=spec.port)


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VxlanParams(VirtualLinkParams):
    """A vxlan's creation (parent: its dev, parent_ns: its underlay namespace) or deletion."""

    vni: Optional[int] = None
    remote: Optional[str] = None  # the remote or the group
    local: Optional[str] = None
    port: Optional[int] = None


class VxlanKind(Kind):
    name = "link"
    params = (VxlanParams,)
    spec = VxlanSpec
    read = staticmethod(links)
    plan = staticmethod(plan_vxlan)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = params_of(change, VxlanParams)
        if change.action == "create":
            create_link(kernel, change.key, params, params.parent_ns, _attributes(kernel, params))
        else:
            delete_link(kernel, params.ns, params.name, params.index, "delete vxlan", "link " + change.key)

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, VxlanParams)
        if change.action == "create":
            return self.replay(Change("link", "delete", change.key, params=VxlanParams("vxlan", params.ns, params.name)))
        # A replaced vxlan made again would be a new link, which the ownership record (restored as
        # before a failed run) would not know as the topology's: a later run would refuse it.
        return None


def _attributes(kernel: Kernel, params: VxlanParams) -> Dict[str, Any]:
    """pyroute2's vxlan arguments (it encodes the port in network order)."""
    attrs: Dict[str, Any] = {"vxlan_id": params.vni, "vxlan_port": params.port}
    if params.remote is not None:
        attrs["vxlan_group6" if ":" in params.remote else "vxlan_group"] = params.remote
    if params.local is not None:
        attrs["vxlan_local6" if ":" in params.local else "vxlan_local"] = params.local
    if params.parent is not None:
        attrs["vxlan_link"] = index_of(kernel, params.parent_ns, params.parent)
    return attrs


VXLAN = VxlanKind()
