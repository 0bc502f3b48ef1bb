# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host devices (``type: device``): an existing link made outside the topology (a NIC, a veth of
someone else) moved from the root namespace into a declared one, found by name or by MAC, and
optionally renamed there.

The topology never creates or deletes the device: it owns its placement only. The placement
(original name, up/down, the device's identity where it was put) is recorded, so that teardown
and purge move the device back to the root namespace under its original name before a namespace
is deleted (deleting a namespace would destroy a veth inside it; never rely on a NIC coming back).
"""

from __future__ import annotations

import dataclasses
import errno
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple

from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import ns_label, refusal
from ..model import Change, Kind, Params, Pending, Undo, params_of
from ..system import thread_netns
from ..validation import LOOPBACK
from .link import Link, forget_indexes, index_of, link_key, links, plan_link_attributes
from .veth import peer_of

LinkKey = Tuple[Optional[str], str]
UPPER_KINDS = ("bridge", "bond", "team", "vlan", "macvlan", "macvtap", "ipvlan")


@dataclasses.dataclass(frozen=True)
class Placement:
    """What the topology did to a device it moved: its name and state before, and where it is now
    (``identity``: [namespace identity, ifindex]; None when claimed ahead of the move)."""

    original: str
    identity: Optional[List[Any]] = dataclasses.field(default=None, hash=False)
    up: bool = False

    def as_json(self) -> Dict[str, Any]:
        return {"original": self.original, "identity": self.identity, "up": self.up}


@dataclasses.dataclass(frozen=True)
class DeviceSpec:
    netns: str
    name: str  # its name inside ``netns``
    match_name: Optional[str] = None  # exactly one of match_name, match_mac
    match_mac: Optional[str] = None  # lower-case
    mtu: Optional[int] = None
    up: Optional[bool] = True
    # every link end the topology declares: a device must be none of them, nor a veth paired with one
    declared: FrozenSet[LinkKey] = dataclasses.field(default=frozenset(), compare=False)
    recorded: Optional[Placement] = dataclasses.field(default=None, compare=False)  # the placement of an earlier run
    field: str = dataclasses.field(default="link", compare=False)

    def matched(self) -> str:
        return "named %s" % self.match_name if self.match_name else "with MAC %s" % self.match_mac


def device_spec(item: Dict[str, Any], declared: FrozenSet[LinkKey] = frozenset()) -> DeviceSpec:
    """From a validated topology link entry (see spec._parse_device)."""
    match = item["match"]
    return DeviceSpec(item["netns"], item["name"], match.get("name"), match.get("mac"), item.get("mtu"),
                      item.get("up", True), declared, field=item.get("path", "link"))


def with_placements(specs: List[Any], placements: Dict[LinkKey, Placement]) -> List[Any]:
    """``specs`` with each device told the placement an earlier run recorded for it."""
    return [dataclasses.replace(spec, recorded=placements.get((spec.netns, spec.name)))
            if isinstance(spec, DeviceSpec) else spec for spec in specs]


# -- finding the device ---------------------------------------------------------------------
def _matches(spec: DeviceSpec, link: Link) -> bool:
    if spec.match_mac is not None:
        return (link.mac or "").lower() == spec.match_mac
    return link.name == spec.match_name


def _placed(kernel: Kernel, spec: DeviceSpec) -> Optional[Link]:
    """The device where it is declared already: by the recorded identity, else by its MAC (never by
    name: a same-named link there may be anything)."""
    if not kernel.exists(spec.netns):
        return None
    present = links(kernel, spec.netns).values()
    identity = spec.recorded.identity if spec.recorded is not None else None
    if spec.recorded is not None and identity is None:  # claimed ahead of a move in this boot: by name
        claimed = links(kernel, spec.netns).get(spec.name)
        if claimed is not None:
            return claimed
    if identity is not None and identity[0] == kernel.identity(spec.netns):
        found = [link for link in present if link.index == identity[1]]
        if found:
            return found[0]
    if spec.match_mac is not None:
        found = _by_mac(spec, present)
        if len(found) > 1:
            raise NetnsError("MAC %s matches several links in namespace %s (%s); refusing to choose"
                             % (spec.match_mac, spec.netns, ", ".join(sorted(link.name for link in found))),
                             obj=spec.field + ".match.mac")
        return found[0] if found else None
    return None


def _by_mac(spec: DeviceSpec, present: Iterable[Link]) -> List[Link]:
    """The links ``spec`` matches; by MAC without the bridges, vlans and macvlans that carry the
    device's MAC as its upper devices (a bridge takes its first port's, a vlan its parent's)."""
    found = [link for link in present if _matches(spec, link)]
    if spec.match_mac is None or len(found) < 2:
        return found
    lower = [link for link in found if link.kind not in UPPER_KINDS]
    return lower if len(lower) == 1 else found


def _in_root(kernel: Kernel, spec: DeviceSpec) -> Optional[Link]:
    found = _by_mac(spec, links(kernel, None).values())
    if len(found) > 1:
        raise NetnsError("MAC %s matches several links in the root namespace (%s); refusing to choose"
                         % (spec.match_mac, ", ".join(sorted(link.name for link in found))), obj=spec.field + ".match.mac")
    return found[0] if found else None


def _check_movable(kernel: Kernel, spec: DeviceSpec, link: Link) -> None:
    obj = spec.field + ".match"
    if link.name == LOOPBACK or link.index == 1:
        raise NetnsError("the loopback device cannot be moved to another namespace", obj=obj)
    if (None, link.name) in spec.declared:
        raise NetnsError("link %s in the root namespace is declared by this topology itself; a device is a link "
                         "made outside it" % link.name, obj=obj)
    if link.master is not None:
        master = next((other.name for other in links(kernel, None).values() if other.index == link.master), link.master)
        raise NetnsError("%s is a port of %s in the root namespace; refusing to take it out" % (link.name, master),
                         obj=obj)
    if link.kind == "veth":
        found = peer_of(kernel, None, link, sorted({ns for ns, _name in spec.declared if ns is not None}))
        if found is not None and (found[0], found[1].name) in spec.declared:
            raise NetnsError("%s is a veth whose peer %s this topology declares; declare the pair instead"
                             % (link.name, link_key(found[0], found[1].name)), obj=obj)


def _elsewhere(kernel: Kernel, spec: DeviceSpec) -> Optional[str]:
    """The named namespace (not the declared one) that holds the device matched by MAC."""
    if spec.match_mac is None:
        return None
    for ns in sorted(kernel.namespaces() - {spec.netns}):
        try:
            if any(_matches(spec, link) for link in links(kernel, ns).values()):
                return ns
        except NetnsError as exc:
            if exc.errno != errno.ENOENT:
                raise
    return None


def _missing(kernel: Kernel, spec: DeviceSpec) -> NetnsError:
    where = _elsewhere(kernel, spec)
    if where is not None:
        return NetnsError("the device %s is in namespace %s, which is not where this topology put it; refusing "
                          "to take it from there" % (spec.matched(), where), obj=spec.field + ".match")
    return NetnsError("no device %s in the root namespace (nor in namespace %s)" % (spec.matched(), spec.netns),
                      obj="link " + link_key(spec.netns, spec.name), errno=errno.ENODEV)


def _check_name_free(kernel: Kernel, spec: DeviceSpec, pending: Pending) -> None:
    taken = (spec.name in links(kernel, spec.netns) and (spec.netns, spec.name) not in pending.doomed_links) \
        if kernel.exists(spec.netns) else spec.name in thread_netns.links_of_a_new_namespace()
    if taken or (spec.netns, spec.name) in pending.links:
        raise NetnsError("namespace %s has a link %s already" % (spec.netns, spec.name), obj=spec.field + ".name")


def _claim(spec: DeviceSpec, ns: Optional[str], index: int, pending: Pending) -> None:
    """Two entries must not take one device (one by name, one by MAC, say)."""
    other = pending.devices.get((ns, index))
    if other is not None and other != spec.field:
        raise NetnsError("matches the same device as %s" % other, obj=spec.field + ".match")
    pending.devices[(ns, index)] = spec.field


# -- planning ------------------------------------------------------------------------------
def plan_device(kernel: Kernel, spec: DeviceSpec, pending: Pending) -> List[Change]:
    key = link_key(spec.netns, spec.name)
    if not kernel.exists(spec.netns) and not pending.has_namespace(spec.netns):
        raise NetnsError("namespace %s does not exist" % spec.netns, obj="link " + key)
    pending.note_link(spec.netns, spec.name, spec.mtu, spec.up)
    current = _placed(kernel, spec)
    if current is not None:
        renamed_before = pending.devices.get((spec.netns, current.index)) == spec.field  # check mode: by plan_renames
        _claim(spec, spec.netns, current.index, pending)
        changes = []
        if current.name != spec.name:
            if not renamed_before:
                changes.append(_rename(kernel, spec, current, pending))
            current = dataclasses.replace(current, name=spec.name, up=False)  # renamed while down
        pending.links.add((spec.netns, spec.name))
        return changes + plan_link_attributes(spec.netns, spec.name, current, spec.mtu, None, spec.up)
    found = _in_root(kernel, spec)
    if found is None:
        raise _missing(kernel, spec)
    _check_movable(kernel, spec, found)
    _check_name_free(kernel, spec, pending)
    _claim(spec, None, found.index, pending)
    pending.links.add((spec.netns, spec.name))
    moved = dataclasses.replace(found, up=False)  # a link moved to another namespace goes down
    return [_placement(None, found, spec.netns, spec.name, found.name, found.up, "move")] + \
        plan_link_attributes(spec.netns, spec.name, moved, spec.mtu, None, spec.up)


def _rename(kernel: Kernel, spec: DeviceSpec, current: Link, pending: Pending) -> Change:
    _check_name_free(kernel, spec, pending)
    recorded = spec.recorded or Placement(current.name, None, current.up)
    return _placement(spec.netns, current, spec.netns, spec.name, recorded.original, recorded.up, "rename")


def plan_renames(kernel: Kernel, specs: List[Any], placements: Dict[LinkKey, Placement], pending: Pending) -> List[Change]:
    """A stage before the topology's plan: each device the topology placed and someone renamed
    inside its namespace is named back first, so that the planners after it (addresses, routes)
    find it, with what it carries, under its declared name."""
    changes: List[Change] = []
    for spec in with_placements(specs, placements):
        if not isinstance(spec, DeviceSpec) or spec.recorded is None:
            continue
        current = _placed(kernel, spec)
        if current is not None and current.name != spec.name:
            changes.append(_rename(kernel, spec, current, pending))
            _claim(spec, spec.netns, current.index, pending)
    return changes


def _placement(from_ns: Optional[str], link: Link, to_ns: Optional[str], name: str, original: str, up: bool,
               action: str) -> Change:
    return Change("link", action, link_key(to_ns, name),
                  {"netns": from_ns, "name": link.name, "type": "device"},
                  {"netns": to_ns, "name": name, "type": "device"},
                  params=DeviceMove(link.index, from_ns, to_ns, name, link.name, original, up))


def plan_return(kernel: Kernel, key: LinkKey, placement: Placement) -> List[Change]:
    """The move of a placed device back to the root namespace under its original name (teardown,
    purge): nothing when it is no longer where the topology put it."""
    ns, name = key
    if ns is None or not kernel.exists(ns):
        return []
    present = links(kernel, ns)
    identity = placement.identity
    if identity is None:
        link = present.get(name)
    elif identity[0] != kernel.identity(ns):
        return []
    else:
        link = next((item for item in present.values() if item.index == identity[1]), None)
    if link is None:
        return []
    if placement.original in links(kernel, None):
        raise NetnsError("cannot move it back: the root namespace has a link %s now; rename that one first"
                         % placement.original, obj="link " + link_key(ns, link.name))
    return [_placement(ns, link, None, placement.original, placement.original, placement.up, "move")]


def plan_returns(kernel: Kernel, placements: Dict[LinkKey, Placement]) -> List[Change]:
    return [change for key in sorted(placements, key=str) for change in plan_return(kernel, key, placements[key])]


def device_report(kernel: Kernel, spec: DeviceSpec) -> Dict[str, Any]:
    link = _placed(kernel, spec)
    if link is None:
        return {"name": spec.name, "netns": spec.netns, "exists": False}
    return dict(link.as_dict(), netns=spec.netns, ifindex=link.index, exists=True)


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DeviceMove(Params):
    """A device taken from ``from_ns`` to ``to_ns`` (the same: a rename) and named ``name`` there."""

    index: int  # its ifindex in from_ns, as planned
    from_ns: Optional[str]
    to_ns: Optional[str]
    name: str
    from_name: str  # its name in from_ns
    original: str  # its name before the topology took it (what teardown gives it back)
    up: bool = False  # bring it up once moved (a return: it was up before the topology took it)


class DeviceKind(Kind):
    name = "link"
    params = (DeviceMove,)
    spec = DeviceSpec
    read = staticmethod(links)
    plan = staticmethod(plan_device)
    report = staticmethod(device_report)

    def apply(self, kernel: Kernel, change: Change) -> None:
        move = params_of(change, DeviceMove)
        _move(kernel, change.key, move, returning=move.to_ns is None)

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        move = params_of(change, DeviceMove)

        def back(kernel_: Kernel) -> None:
            index = index_of(kernel_, move.to_ns, move.name)
            _move(kernel_, change.key, DeviceMove(index, move.to_ns, move.from_ns, move.from_name, move.name,
                                                  move.original, move.up), returning=True)
        return back


def _move(kernel: Kernel, key: str, move: DeviceMove, returning: bool) -> None:
    attrs: Dict[str, Any] = {"index": move.index, "ifname": move.name}
    if move.to_ns != move.from_ns:
        attrs["net_ns_fd"] = kernel.fd(move.to_ns)  # with IFLA_IFNAME: moved and renamed in one request
    what = "rename" if move.to_ns == move.from_ns else "move to the %s" % ns_label(move.to_ns)
    with refusal(what, "link " + key):
        requests = kernel.netlink.requests(move.from_ns)
        if move.to_ns == move.from_ns:
            requests.link("set", index=move.index, state="down")  # the kernel renames only a link that is down
        requests.link("set", **attrs)
    forget_indexes(kernel)
    kernel.cache.invalidate(move.from_ns, "links")
    kernel.cache.invalidate(move.to_ns, "links")
    if returning and move.up:
        with refusal("set link up", "link " + link_key(move.to_ns, move.name)):
            kernel.netlink.requests(move.to_ns).link("set", index=index_of(kernel, move.to_ns, move.name), state="up")
        kernel.cache.invalidate(move.to_ns, "links")


DEVICE = DeviceKind()
