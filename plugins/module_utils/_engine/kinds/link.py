# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Links as the kernel reports them, and the attribute changes every kind of link shares."""

from __future__ import annotations

import dataclasses
import errno
import socket
from typing import Any, Dict, List, Optional

from .._netlink.constants import IFF_UP
from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import as_list, attr, ns_label, refusal
from ..model import Change, Kind, Params, Undo, params_of, undo_nothing


@dataclasses.dataclass(frozen=True)
class VxlanAttributes:
    """What a vxlan was created with (none of it can be changed in place)."""

    vni: int
    group: Optional[str]  # the remote (unicast) or multicast group, either family
    local: Optional[str]
    dev: Optional[int]  # the underlay device's ifindex, in the vxlan's link namespace
    port: Optional[int]


@dataclasses.dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: Optional[str]  # veth, bridge, vlan, macvlan, ... (None for loopback and physical NICs)
    mtu: int
    mac: Optional[str]
    up: bool
    peer_index: Optional[int]  # IFLA_LINK: the veth peer's / vlan parent's ifindex
    peer_nsid: Optional[int]  # IFLA_LINK_NETNSID: where that peer lives, as seen from here
    master: Optional[int]
    vxlan: Optional[VxlanAttributes] = None

    def as_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "mtu": self.mtu, "mac": self.mac,
                "state": "up" if self.up else "down"}


def _link_from_msg(msg: Any) -> Link:
    return Link(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        kind=attr(msg, "IFLA_LINKINFO", "IFLA_INFO_KIND"),
        mtu=msg.get_attr("IFLA_MTU"),
        mac=msg.get_attr("IFLA_ADDRESS"),
        up=bool(msg["flags"] & IFF_UP),
        peer_index=msg.get_attr("IFLA_LINK"),
        peer_nsid=msg.get_attr("IFLA_LINK_NETNSID"),
        master=msg.get_attr("IFLA_MASTER"),
        vxlan=_vxlan_of(msg),
    )


def _vxlan_of(msg: Any) -> Optional[VxlanAttributes]:
    data = attr(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA")
    if data is None or attr(msg, "IFLA_LINKINFO", "IFLA_INFO_KIND") != "vxlan":
        return None
    return VxlanAttributes(
        vni=data.get_attr("IFLA_VXLAN_ID"),
        group=data.get_attr("IFLA_VXLAN_GROUP") or data.get_attr("IFLA_VXLAN_GROUP6"),
        local=data.get_attr("IFLA_VXLAN_LOCAL") or data.get_attr("IFLA_VXLAN_LOCAL6"),
        dev=data.get_attr("IFLA_VXLAN_LINK") or None,
        port=data.get_attr("IFLA_VXLAN_PORT"))


def read_links(kernel: Kernel, ns: Optional[str]) -> Dict[str, Link]:
    """All links of ``ns`` by name: one dump. A missing namespace has none."""
    if not kernel.exists(ns):
        return {}
    links = [_link_from_msg(msg) for msg in kernel.netlink.dump(ns, "links")]
    return {link.name: link for link in links}


def links(kernel: Kernel, ns: Optional[str]) -> Dict[str, Link]:
    return kernel.cache.get(ns, "links", lambda n: read_links(kernel, n))


def link_key(ns: Optional[str], name: str) -> str:
    return "%s in %s" % (name, ns_label(ns))


def plan_link_attributes(
    ns: Optional[str],
    name: str,
    current: Optional[Link],
    mtu: Optional[int] = None,
    mac: Optional[str] = None,
    up: Optional[bool] = None,
) -> List[Change]:
    """Set MTU, MAC and up/down where they differ; ``None`` means 'leave as it is'.

    ``current`` is None for a link the same plan creates: every requested attribute is set then.
    """
    before: Dict[str, Any] = {}
    after: Dict[str, Any] = {}
    if mtu is not None and (current is None or current.mtu != mtu):
        before["mtu"], after["mtu"] = (current.mtu if current else None), mtu
    if mac is not None and (current is None or (current.mac or "").lower() != mac):
        before["mac"], after["mac"] = (current.mac if current else None), mac
    if up is not None and (current is None or current.up != up):
        before["state"] = None if current is None else ("up" if current.up else "down")
        after["state"] = "up" if up else "down"
    if not after:
        return []
    return [Change("link", "update", link_key(ns, name), before, after,
                   params=LinkAttributes(ns, name, after.get("mtu"), after.get("mac"),
                                         None if "state" not in after else after["state"] == "up"))]


@dataclasses.dataclass(frozen=True)
class LinkAttributes(Params):
    """What to set of a link of any type; None: leave as it is."""

    ns: Optional[str]
    name: str
    mtu: Optional[int] = None
    mac: Optional[str] = None
    up: Optional[bool] = None


class LinkAttributesKind(Kind):
    """MTU, MAC and up/down of links of every type (the types themselves are kinds of their own)."""

    name = "link"
    params = (LinkAttributes,)
    read = staticmethod(links)
    plan = staticmethod(plan_link_attributes)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = params_of(change, LinkAttributes)
        requests = kernel.netlink.requests(params.ns)
        with refusal("set link", change.key):
            index = index_of(kernel, params.ns, params.name)
            attrs: Dict[str, Any] = {}
            if params.mtu is not None:
                attrs["mtu"] = params.mtu
            if params.mac is not None:
                attrs["address"] = params.mac
            if params.up is not None:
                attrs["state"] = "up" if params.up else "down"
            requests.link("set", index=index, **attrs)
        kernel.cache.invalidate(params.ns, "links")

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, LinkAttributes)
        # The plan's "before" is the link as read when planning (None for a link the run creates,
        # whose creation's undo covers it): no read here, which would be one dump per change.
        before = change.before or {}
        if all(value is None for value in before.values()):
            return undo_nothing
        return self.replay(Change("link", "update", change.key, params=LinkAttributes(
            params.ns, params.name, before.get("mtu"), before.get("mac"),
            None if before.get("state") is None else before["state"] == "up")))


def index_of(kernel: Kernel, ns: Optional[str], name: str) -> int:
    """The ifindex of ``name`` in ``ns``: from the cached dump when there is one, else from the
    indexes this run already looked up, else if_nametoindex inside ``ns`` (one ioctl: appliers
    invalidate the dump after each change, and re-dumping every link of a namespace, or even one
    netlink request decoded by pyroute2, per change would dominate a whole topology)."""
    cached = kernel.cache.peek(ns, "links")
    if cached is not None and name in cached:
        return cached[name].index
    key = (ns, name)
    if key not in kernel.cache.indexes:
        kernel.cache.indexes[key] = _lookup_index(kernel, ns, name)
    return kernel.cache.indexes[key]


def _lookup_index(kernel: Kernel, ns: Optional[str], name: str) -> int:
    try:
        with kernel.entered(ns):
            return socket.if_nametoindex(name)
    except OSError as exc:
        if exc.errno is None:
            # CPython reports every failure of if_nametoindex without an errno, a missing name as
            # well as a socket it could not open (EMFILE): netlink tells which it was.
            return _lookup_index_by_netlink(kernel, ns, name)
        if exc.errno == errno.ENODEV:
            raise NetnsError("link does not exist", obj=link_key(ns, name), errno=errno.ENODEV) from None
        raise NetnsError("cannot look up link: %s" % exc, obj=link_key(ns, name), errno=exc.errno) from None


def _lookup_index_by_netlink(kernel: Kernel, ns: Optional[str], name: str) -> int:
    with refusal("look up link", link_key(ns, name)):
        found = as_list(kernel.netlink.ipr(ns).link_lookup(ifname=name))
    if not found:
        raise NetnsError("link does not exist", obj=link_key(ns, name), errno=errno.ENODEV)
    return found[0]


def delete_link(kernel: Kernel, ns: Optional[str], name: str, index: Optional[int], what: str, obj: str) -> None:
    """Delete a link of any type: by ``index`` when it was planned by identity (whatever its name
    is now), else by ``name``."""
    with refusal(what, obj):
        kernel.netlink.requests(ns).link("del", index=index or index_of(kernel, ns, name))
    forget_indexes(kernel)
    kernel.cache.invalidate(ns, "links")


def forget_indexes(kernel: Kernel) -> None:
    """After a link is deleted or moved (or a namespace deleted, taking veth peers elsewhere along),
    a remembered ifindex may name nothing, or a newer link: forget them all."""
    kernel.cache.indexes.clear()


LINK_ATTRIBUTES = LinkAttributesKind()
