# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Veth pairs with each end in any namespace.

The pair is created in one request with the peer placed directly in its namespace. Ends are
identified across namespaces by peer ifindex plus IFLA_LINK_NETNSID, never by name alone, so a
same-named link that is not this pair's end is refused instead of broken.
"""

from __future__ import annotations

import dataclasses
import errno
from typing import Any, Dict, List, Optional, Tuple

from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import ns_label, refusal
from ..model import Change, Kind, Params, Pending, Undo, params_of
from ..system import thread_netns
from ..validation import check_ifname, check_link_mac, check_mac, check_mtu, check_new_link_name, check_optional_netns
from .link import Link, delete_link, forget_indexes, index_of, link_key, links, plan_link_attributes


@dataclasses.dataclass(frozen=True)
class VethEnd:
    netns: Optional[str]
    name: str
    mtu: Optional[int] = None
    mac: Optional[str] = None
    up: Optional[bool] = True


@dataclasses.dataclass(frozen=True)
class VethSpec:
    end: VethEnd
    peer: VethEnd
    state: str = "present"
    field: str = dataclasses.field(default="veth", compare=False)  # where it is declared


def veth_spec(name: str, peer: str, netns: Optional[str] = None, peer_netns: Optional[str] = None,
              mtu: Optional[int] = None, peer_mtu: Optional[int] = None, mac: Optional[str] = None,
              peer_mac: Optional[str] = None, up: Optional[bool] = True, peer_up: Optional[bool] = True,
              state: str = "present", field: str = "veth") -> VethSpec:
    """Validate raw input into a spec; raises NetnsError naming the field."""
    # a pair to remove need not be one the kernel would create
    name_check, mac_check = (check_new_link_name, check_link_mac) if state == "present" else (check_ifname, check_mac)
    end = VethEnd(check_optional_netns(netns, field + ".netns"), name_check(name, field + ".name"),
                  check_mtu(mtu, field + ".mtu"), mac_check(mac, field + ".mac"), up)
    other = VethEnd(check_optional_netns(peer_netns, field + ".peer_netns"), name_check(peer, field + ".peer"),
                    check_mtu(peer_mtu, field + ".peer_mtu"), mac_check(peer_mac, field + ".peer_mac"), peer_up)
    if (end.netns, end.name) == (other.netns, other.name):
        raise NetnsError("both ends are %r in the %s" % (name, ns_label(end.netns)), obj=field + ".peer")
    if state not in ("present", "absent"):
        raise NetnsError("state must be 'present' or 'absent', not %r" % (state,), obj=field + ".state")
    return VethSpec(end, other, state, field)


# -- reading -------------------------------------------------------------------------------
Located = Tuple[Optional[str], Link]  # (namespace, link)


def _find(kernel: Kernel, end: VethEnd) -> Optional[Link]:
    return links(kernel, end.netns).get(end.name) if kernel.exists(end.netns) else None


def peer_of(kernel: Kernel, ns: Optional[str], link: Link, prefer: List[Optional[str]]) -> Optional[Located]:
    """Where the other end of veth ``link`` (in ``ns``) really is: by IFLA_LINK_NETNSID and ifindex.

    ``prefer`` is searched first; the other named namespaces only if needed (a moved end)."""
    if link.kind != "veth":
        return None
    return linked(kernel, ns, link, prefer)


def linked(kernel: Kernel, ns: Optional[str], link: Link, prefer: List[Optional[str]]) -> Optional[Located]:
    """The link that ``link``'s IFLA_LINK (and IFLA_LINK_NETNSID) points to: a veth's peer, a vlan's
    or macvlan's parent; ``prefer`` is searched first."""
    if link.peer_index is None:
        return None
    candidates = [ns] if link.peer_nsid is None else \
        list(dict.fromkeys(prefer + [None] + sorted(kernel.namespaces())))
    for candidate in candidates:
        if not kernel.exists(candidate):
            continue
        try:
            if link.peer_nsid is not None and (candidate == ns or kernel.nsid(ns, candidate) != link.peer_nsid):
                continue
            found = [other for other in links(kernel, candidate).values() if other.index == link.peer_index]
        except NetnsError as exc:
            if candidate is None or candidate in prefer or exc.errno != errno.ENOENT:
                raise
            continue  # someone else's namespace, deleted while we looked through them all
        if found:
            return candidate, found[0]
    return None


def _is_pair(kernel: Kernel, end: VethEnd, link: Link, other_end: VethEnd, other: Link) -> bool:
    if link.kind != "veth" or other.kind != "veth" or link.peer_index != other.index:
        return False
    if end.netns == other_end.netns:
        return link.peer_nsid is None
    return link.peer_nsid is not None and kernel.nsid(end.netns, other_end.netns) == link.peer_nsid


def _describe(ns: Optional[str], link: Link) -> str:
    return "%s link %s in the %s" % (link.kind or "physical", link.name, ns_label(ns))


# -- planning ------------------------------------------------------------------------------
def plan_veth(kernel: Kernel, spec: VethSpec, pending: Pending) -> List[Change]:
    if spec.state == "absent":
        return _plan_absent(kernel, spec)
    for end in (spec.end, spec.peer):
        if not kernel.exists(end.netns) and not pending.has_namespace(end.netns):
            raise NetnsError("namespace %s does not exist" % end.netns, obj="veth " + link_key(end.netns, end.name))
    a, b = (None if (end.netns, end.name) in pending.doomed_links else _find(kernel, end)
            for end in (spec.end, spec.peer))
    for end in (spec.end, spec.peer):
        pending.note_link(end.netns, end.name, end.mtu, end.up)
    if a is not None and b is not None:
        if not _is_pair(kernel, spec.end, a, spec.peer, b):
            raise NetnsError("%s and %s exist but are not the two ends of one veth pair; refusing to change them"
                             % (_describe(spec.end.netns, a), _describe(spec.peer.netns, b)),
                             obj="veth " + link_key(spec.end.netns, spec.end.name))
        return _plan_attributes(spec, a, b)
    if a is None and b is None:
        for end, field in ((spec.end, "name"), (spec.peer, "peer")):
            _check_name_free_in_new_namespace(kernel, end, "%s.%s" % (spec.field, field))
        pending.links.update({(spec.end.netns, spec.end.name), (spec.peer.netns, spec.peer.name)})
        # MTU and MAC of both ends, and the first end's up, come with the create (flags given for
        # the peer in that request had no effect, with pyroute2 0.7.2 and 0.9.7).
        created = dataclasses.replace(spec, end=dataclasses.replace(spec.end, mtu=None, mac=None,
                                                                    up=False if spec.end.up is False else None),
                                      peer=dataclasses.replace(spec.peer, mtu=None, mac=None))
        return [_create(spec)] + _plan_attributes(created, None, None)
    present, missing, link = (spec.end, spec.peer, a) if a is not None else (spec.peer, spec.end, b)
    moved, current = _plan_move(kernel, present, link, missing)
    return [moved] + (_plan_attributes(spec, a, current) if a is not None else _plan_attributes(spec, current, b))


def _check_name_free_in_new_namespace(kernel: Kernel, end: VethEnd, field: str) -> None:
    if not kernel.exists(end.netns) and end.name in thread_netns.links_of_a_new_namespace():
        raise NetnsError("every new namespace has a link %s already (the kernel makes it); choose another name"
                         % end.name, obj=field)


def _plan_attributes(spec: VethSpec, a: Optional[Link], b: Optional[Link]) -> List[Change]:
    return (plan_link_attributes(spec.end.netns, spec.end.name, a, spec.end.mtu, spec.end.mac, spec.end.up)
            + plan_link_attributes(spec.peer.netns, spec.peer.name, b, spec.peer.mtu, spec.peer.mac, spec.peer.up))


def _create(spec: VethSpec) -> Change:
    def attrs(end: VethEnd) -> Dict[str, Any]:
        return {k: v for k, v in (("netns", end.netns), ("mtu", end.mtu), ("mac", end.mac)) if v is not None}

    after = {"type": "veth", "peer": spec.peer.name, "peer_netns": spec.peer.netns,
             **attrs(spec.end), **{"peer_" + k: v for k, v in attrs(spec.peer).items() if k != "netns"}}
    if spec.end.up:
        after["state"] = "up"
    return Change("link", "create", link_key(spec.end.netns, spec.end.name), None, after,
                  params=VethPair(spec.end, spec.peer))


def _plan_move(kernel: Kernel, present: VethEnd, link: Link, missing: VethEnd) -> Tuple[Change, Link]:
    """``missing`` is not where declared: if the far end of ``present`` is it, move it back."""
    obj = "veth " + link_key(present.netns, present.name)
    if link.kind != "veth":
        raise NetnsError("%s exists and is not a veth; refusing to change it" % _describe(present.netns, link), obj=obj)
    found = peer_of(kernel, present.netns, link, [missing.netns])
    if found is None:
        raise NetnsError("its peer is in a namespace without a name; cannot bring %s to the %s"
                         % (missing.name, ns_label(missing.netns)), obj=obj)
    where, peer = found
    if peer.name != missing.name:
        raise NetnsError("it is paired with %s, not %s; refusing to change it" % (_describe(where, peer), missing.name),
                         obj=obj)
    change = Change("link", "move", link_key(missing.netns, missing.name), {"netns": where}, {"netns": missing.netns},
                    params=VethMove(missing.name, where, missing.netns))
    return change, dataclasses.replace(peer, up=False)  # a link moved to another namespace goes down


def plan_stranded_end(kernel: Kernel, end: Tuple[Optional[str], str], peer: Tuple[Optional[str], str],
                      index: Optional[int]) -> List[Change]:
    """The deletion of veth ``end`` (created by the topology as ifindex ``index``) when its declared
    ``peer`` is out of reach in a namespace without a name: the peer's namespace was deleted by name
    (``ip netns delete``) while a process kept it alive. Deleting the end destroys the pair; the
    topology's plan then makes it anew, in the namespace it re-creates. Nothing when the peer is
    where declared or in a named namespace (``plan_veth`` moves it back or refuses)."""
    (ns, name), (peer_ns, peer_name) = end, peer
    if kernel.exists(peer_ns) and peer_name in links(kernel, peer_ns):
        return []
    link = links(kernel, ns).get(name) if kernel.exists(ns) else None
    if link is None or link.kind != "veth" or link.peer_nsid is None or peer_of(kernel, ns, link, [peer_ns]) is not None:
        return []
    return [Change("link", "delete", link_key(ns, name), link.as_dict(), None,
                   params=VethDeletion(ns, name, peer_ns if kernel.exists(peer_ns) else ns, index))]


def _plan_absent(kernel: Kernel, spec: VethSpec) -> List[Change]:
    for end, other in ((spec.end, spec.peer), (spec.peer, spec.end)):
        link = _find(kernel, end)
        if link is None:
            continue
        obj = "veth " + link_key(end.netns, end.name)
        found = peer_of(kernel, end.netns, link, [other.netns])
        if link.kind != "veth" or found is None or (found[0], found[1].name) != (other.netns, other.name):
            raise NetnsError("%s is not paired with %s; refusing to delete it" % (_describe(end.netns, link), other.name),
                             obj=obj)
        return [Change("link", "delete", link_key(end.netns, end.name), link.as_dict(), None,
                       params=VethDeletion(end.netns, end.name, found[0]))]
    return []


def veth_report(kernel: Kernel, spec: VethSpec) -> Dict[str, Any]:
    """The veth module's return value: both ends as they are now."""
    def end_state(end: VethEnd) -> Dict[str, Any]:
        link = _find(kernel, end)
        if link is None:
            return {"name": end.name, "netns": end.netns, "exists": False}
        return dict(link.as_dict(), netns=end.netns, ifindex=link.index, exists=True)

    return {"end": end_state(spec.end), "peer": end_state(spec.peer)}


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VethPair(Params):
    end: VethEnd
    peer: VethEnd


@dataclasses.dataclass(frozen=True)
class VethMove(Params):
    """An end that is in the wrong namespace, taken back to the declared one."""

    name: str
    from_ns: Optional[str]
    to_ns: Optional[str]


@dataclasses.dataclass(frozen=True)
class VethDeletion(Params):
    ns: Optional[str]
    name: str
    peer_ns: Optional[str]
    index: Optional[int] = None  # planned by identity: deleted by this ifindex, whatever its name now


class VethKind(Kind):
    name = "link"
    params = (VethPair, VethMove, VethDeletion)
    spec = VethSpec
    read = staticmethod(links)
    plan = staticmethod(plan_veth)
    report = staticmethod(veth_report)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = change.params
        if isinstance(params, VethPair):
            _create_pair(kernel, change.key, params)
        elif isinstance(params, VethMove):
            _move(kernel, change.key, params)
        else:
            deletion = params_of(change, VethDeletion)
            delete_link(kernel, deletion.ns, deletion.name, deletion.index, "delete veth pair", "veth " + change.key)
            kernel.cache.invalidate(deletion.peer_ns, "links")

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = change.params
        if isinstance(params, VethPair):
            return self.replay(Change("link", "delete", change.key,
                                      params=VethDeletion(params.end.netns, params.end.name, params.peer.netns)))
        return None  # a deleted pair's addresses are gone with it; a moved end lost its addresses


def _create_pair(kernel: Kernel, key: str, pair: VethPair) -> None:
    end, peer = pair.end, pair.peer
    peer_attrs: Dict[str, Any] = {"ifname": peer.name}
    if peer.netns != end.netns:
        peer_attrs["net_ns_fd"] = kernel.fd(peer.netns)
    attrs: Dict[str, Any] = {"ifname": end.name, "kind": "veth", "peer": peer_attrs}
    for target, item in ((attrs, end), (peer_attrs, peer)):
        if item.mtu is not None:
            target["mtu"] = item.mtu
        if item.mac is not None:
            target["address"] = item.mac
    if end.up:
        attrs["state"] = "up"
    with refusal("create veth pair", "veth " + key):
        kernel.netlink.requests(end.netns).link("add", **attrs)
    kernel.cache.invalidate(end.netns, "links")
    kernel.cache.invalidate(peer.netns, "links")


def _move(kernel: Kernel, key: str, move: VethMove) -> None:
    with refusal("move to the %s" % ns_label(move.to_ns), "veth " + key):
        kernel.netlink.requests(move.from_ns).link("set", index=index_of(kernel, move.from_ns, move.name),
                                                   net_ns_fd=kernel.fd(move.to_ns))
    forget_indexes(kernel)
    kernel.cache.invalidate(move.from_ns, "links")
    kernel.cache.invalidate(move.to_ns, "links")


VETH = VethKind()
