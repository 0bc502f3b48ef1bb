# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPv4/IPv6 addresses on a device in a namespace, keyed by (device, IP)."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

from .._netlink.constants import IFA_F_DADFAILED, IFA_F_NODAD, IFA_F_TENTATIVE, RTPROT_KERNEL
from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import ns_label, refusal
from ..model import Change, Kind, Params, Pending, Undo, params_of
from ..validation import (
    IPV6_MIN_MTU,
    LOOPBACK,
    IPInterface,
    check_host_address,
    check_ifname,
    check_optional_netns,
    parse_interface,
)
from .address_state import Address, addresses
from .link import index_of, links, plan_link_attributes
from .route import ROUTE, RouteParams, routes


@dataclasses.dataclass(frozen=True)
class AddressSpec:
    netns: Optional[str]
    dev: str
    addresses: Tuple[IPInterface, ...]
    state: str = "present"
    exclusive: bool = False
    purge_link_local: bool = False
    nodad: bool = False
    dev_up: Optional[bool] = None
    lo_up: Optional[bool] = None


def address_spec(netns: Optional[str], dev: str, addresses: List[str], state: str = "present",
                 exclusive: bool = False, purge_link_local: bool = False, nodad: bool = False,
                 dev_up: Optional[bool] = None, lo_up: Optional[bool] = None, field: str = "addresses") -> AddressSpec:
    """Validate raw input into a spec; raises NetnsError naming the field."""
    check_optional_netns(netns, "netns")
    check_ifname(dev, "dev")
    if state not in ("present", "absent"):
        raise NetnsError("state must be 'present' or 'absent', not %r" % (state,), obj="state")
    if not isinstance(addresses, (list, tuple)):
        raise NetnsError("must be a list of addresses in CIDR notation", obj=field)
    parsed = [parse_interface(a, "%s[%d]" % (field, i)) for i, a in enumerate(addresses)]
    if state == "present":  # an address to remove need not be one the kernel would add
        for i, iface in enumerate(parsed):
            check_host_address(iface, dev, "%s[%d]" % (field, i))
    seen: Dict[str, int] = {}
    for i, iface in enumerate(parsed):
        if str(iface.ip) in seen:
            raise NetnsError("%s is listed twice (also at %s[%d])" % (iface.ip, field, seen[str(iface.ip)]),
                             obj="%s[%d]" % (field, i))
        seen[str(iface.ip)] = i
    return AddressSpec(netns or None, dev, tuple(parsed), state, exclusive, purge_link_local, nodad, dev_up, lo_up)


# -- planning ------------------------------------------------------------------------------
def address_key(ns: Optional[str], dev: str, iface: IPInterface) -> str:
    return "%s on %s in %s" % (iface.with_prefixlen, dev, ns_label(ns))


def plan_address_set(spec: AddressSpec, current: List[Address]) -> List[Change]:
    """Pure: the changes that bring the addresses of ``spec.dev`` (``current``) to ``spec``."""
    on_dev = {str(a.interface.ip): a for a in current if a.dev == spec.dev}
    wanted = {str(iface.ip): iface for iface in spec.addresses}
    changes: List[Change] = []
    if spec.state == "absent":
        for ip in wanted:
            if ip in on_dev:
                changes.append(_change("delete", spec, on_dev[ip].interface, None))
        return changes
    # Removals first: deleting a primary IPv4 address also drops the secondaries of its subnet
    # (unless net.ipv4.conf.*.promote_secondaries), which would take a just-added address with it.
    if spec.exclusive:
        for ip, have in on_dev.items():
            if ip in wanted:
                continue
            if have.interface.ip.version == 6 and have.interface.ip.is_link_local and not spec.purge_link_local:
                continue
            changes.append(_change("delete", spec, have.interface, None))
    for ip, iface in wanted.items():
        have = on_dev.get(ip)
        if have is None:
            changes.append(_change("create", spec, None, iface))
        elif have.interface.network.prefixlen != iface.network.prefixlen:
            changes.append(_change("replace", spec, have.interface, iface))
    return changes


def _change(action: str, spec: AddressSpec, old: Optional[IPInterface], new: Optional[IPInterface]) -> Change:
    return Change("address", action, address_key(spec.netns, spec.dev, new or old),
                  None if old is None else {"address": old.with_prefixlen},
                  None if new is None else {"address": new.with_prefixlen},
                  params=AddressParams(spec.netns, spec.dev, old, new, spec.nodad and new is not None and new.version == 6))


def plan_addresses(kernel: Kernel, spec: AddressSpec, pending: Pending) -> List[Change]:
    ns_missing = not kernel.exists(spec.netns)
    if spec.state == "absent":
        return [] if ns_missing else plan_address_set(spec, addresses(kernel, spec.netns))
    if ns_missing and not pending.has_namespace(spec.netns):
        raise NetnsError("namespace %s does not exist" % spec.netns, obj="dev %s" % spec.dev)
    present = links(kernel, spec.netns) if not ns_missing else {}
    dev = present.get(spec.dev)
    if dev is None and not pending.has_link(spec.netns, spec.dev) and not ns_missing:
        raise NetnsError("device does not exist", obj="dev %s in %s" % (spec.dev, ns_label(spec.netns)))
    current = [a for a in addresses(kernel, spec.netns) if (spec.netns, a.dev) not in pending.doomed_links]
    changes = plan_address_set(spec, current)
    added = [c.params.new for c in changes if isinstance(c.params, AddressParams) and c.params.new is not None]
    _check_ipv6_mtu(spec, added, pending.link_mtus.get((spec.netns, spec.dev), dev.mtu if dev is not None else None))
    pending.networks.update((spec.netns, iface.network) for iface in added)
    pending.addresses.update((spec.netns, Address(spec.dev, iface, _flags_when_added(spec, iface))) for iface in added)
    if spec.dev_up is not None:
        changes += plan_link_attributes(spec.netns, spec.dev, dev, up=spec.dev_up)
    if spec.lo_up is not None and spec.dev != "lo":
        changes += plan_link_attributes(spec.netns, "lo", present.get("lo"), up=spec.lo_up)
    return changes


def _check_ipv6_mtu(spec: AddressSpec, added: List[IPInterface], mtu: Optional[int]) -> None:
    for iface in added:
        if iface.version == 6 and mtu is not None and mtu < IPV6_MIN_MTU:
            raise NetnsError("%s has an MTU of %d: a link has no IPv6 below %d" % (spec.dev, mtu, IPV6_MIN_MTU),
                             obj="address " + address_key(spec.netns, spec.dev, iface))


def _flags_when_added(spec: AddressSpec, iface: IPInterface) -> int:
    """An IPv6 address is tentative until duplicate address detection ends (lo has none)."""
    if iface.version != 6:
        return 0
    return IFA_F_NODAD if spec.nodad or spec.dev == LOOPBACK else IFA_F_TENTATIVE


def address_report(kernel: Kernel, spec: AddressSpec) -> Dict[str, Any]:
    """The netns_addr module's return value: the device's addresses now."""
    if not kernel.exists(spec.netns):
        return {"addresses": [], "exists": False}
    return {"exists": spec.dev in links(kernel, spec.netns),
            "addresses": [{"address": a.interface.with_prefixlen, "tentative": a.tentative,
                           "dadfailed": bool(a.flags & IFA_F_DADFAILED)}
                          for a in addresses(kernel, spec.netns) if a.dev == spec.dev]}


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AddressParams(Params):
    ns: Optional[str]
    dev: str
    old: Optional[IPInterface]  # delete or replace this
    new: Optional[IPInterface]  # add this
    nodad: bool = False


class AddressKind(Kind):
    name = "address"
    params = (AddressParams,)
    spec = AddressSpec
    read = staticmethod(addresses)
    plan = staticmethod(plan_addresses)
    report = staticmethod(address_report)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = params_of(change, AddressParams)
        if params.old is not None:
            _delete(kernel, change.key, params, params.old)
        if params.new is not None:
            _add(kernel, change.key, params, params.new)
        kernel.cache.invalidate(params.ns, "addresses")

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, AddressParams)
        inverse = Change("address", {"create": "delete", "delete": "create", "replace": "replace"}[change.action],
                         change.key, params=dataclasses.replace(params, old=params.new, new=params.old))
        # Removing an address makes the kernel drop the routes through gateways on its prefix; those
        # are no change of this run's plan, so remember them here and put them back with the address.
        dropped_with_it = [] if params.old is None else \
            [r for r in routes(kernel, params.ns) if r.proto != RTPROT_KERNEL and r.via is not None]

        def undo(kernel_: Kernel) -> None:
            self.apply(kernel_, inverse)
            kernel_.cache.invalidate(params.ns)
            present = {r.identity for r in routes(kernel_, params.ns)}
            for route in dropped_with_it:
                if route.identity not in present:
                    ROUTE.apply(kernel_, Change("route", "update", "%s in %s" % (route.dst, params.ns),
                                                params=RouteParams(params.ns, route)))
        return undo


def _add(kernel: Kernel, key: str, params: AddressParams, iface: IPInterface) -> None:
    extra: Dict[str, Any] = {"flags": IFA_F_NODAD} if params.nodad else {}
    with refusal("add address", "address " + key):
        index = index_of(kernel, params.ns, params.dev)
        kernel.netlink.requests(params.ns).addr("add", index=index, address=str(iface.ip),
                                                prefixlen=iface.network.prefixlen, **extra)


def _delete(kernel: Kernel, key: str, params: AddressParams, iface: IPInterface) -> None:
    with refusal("delete address", "address " + key):
        index = index_of(kernel, params.ns, params.dev)
        kernel.netlink.requests(params.ns).addr("del", index=index, address=str(iface.ip),
                                                prefixlen=iface.network.prefixlen)


ADDRESS = AddressKind()
