# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routes in a namespace, keyed by (family, dst, table, metric): another gateway replaces in place."""

from __future__ import annotations

import dataclasses
import socket
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from .._netlink.constants import (
    RT_SCOPES,
    RT_TABLE_LOCAL,
    RT_TABLE_MAIN,
    RT_TABLE_NAMES,
    RTN_UNICAST,
    RTNH_F_ONLINK,
    RTPROT_KERNEL,
)
from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import ns_label, refusal
from ..model import Change, Kind, Params, Pending, Undo, params_of
from ..validation import (
    IPV6_MIN_MTU,
    LOOPBACK,
    IPAddress,
    IPNetwork,
    check_gateway,
    check_ifname,
    check_optional_netns,
    check_source,
    ip_address,
    ip_network,
    parse_address,
    parse_destination,
)
from .address_state import Address, addresses
from .link import Link, index_of, links

DEFAULT_METRIC = {4: 0, 6: 1024}


@dataclasses.dataclass(frozen=True)
class Route:
    dst: IPNetwork
    table: int
    metric: int
    via: Optional[IPAddress] = None
    dev: Optional[str] = None
    scope: Optional[int] = None
    onlink: bool = False
    src: Optional[IPAddress] = None
    proto: Optional[int] = None

    @property
    def identity(self) -> Tuple[int, str, int, int]:
        return (self.dst.version, str(self.dst), self.table, self.metric)

    def as_dict(self) -> Dict[str, Any]:
        data = {"dst": "default" if self.dst.prefixlen == 0 else str(self.dst), "table": self.table,
                "metric": self.metric, "via": None if self.via is None else str(self.via), "dev": self.dev,
                "scope": self.scope, "onlink": self.onlink, "src": None if self.src is None else str(self.src)}
        return {k: v for k, v in data.items() if v not in (None, False)}


@dataclasses.dataclass(frozen=True)
class RouteSpec:
    netns: Optional[str]
    routes: Tuple[Route, ...]
    state: str = "present"
    exclusive: bool = False


def _scope(value: Any, field: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, str) and value in RT_SCOPES:
        return RT_SCOPES[value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise NetnsError("scope must be one of %s or 0..255, not %r" % (", ".join(RT_SCOPES), value), obj=field)


def _table(value: Any, field: str) -> int:
    if value is None:
        return RT_TABLE_MAIN
    if value in RT_TABLE_NAMES:
        return RT_TABLE_NAMES[value]
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2 ** 32 and value != RT_TABLE_LOCAL:
        return value
    raise NetnsError("table must be main, default or a number 1..4294967295 (not local), not %r" % (value,), obj=field)


def parse_route(item: Any, field: str, adding: bool = True) -> Route:
    """``adding``: also refuse what the kernel refuses in a new route (a route to remove needs none of it)."""
    if not isinstance(item, dict):
        raise NetnsError("a route must be a mapping", obj=field)
    unknown = set(item) - {"dst", "via", "dev", "metric", "table", "scope", "onlink", "src", "path"}
    if unknown:
        raise NetnsError("unknown key(s) %s" % ", ".join(sorted(unknown)), obj=field)
    via = None if item.get("via") is None else parse_address(item["via"], field + ".via")
    if via is not None and adding:
        check_gateway(via, field + ".via")
    dst = parse_destination(item.get("dst") or "default", field + ".dst", None if via is None else via.version)
    if via is not None and via.version != dst.version:
        raise NetnsError("gateway %s is IPv%d but the destination %s is IPv%d" % (via, via.version, dst, dst.version),
                         obj=field + ".via")
    dev = None if item.get("dev") is None else check_ifname(item["dev"], field + ".dev")
    if via is None and dev is None:
        raise NetnsError("a route needs a gateway (via) or a device (dev)", obj=field)
    src = None if item.get("src") is None else parse_address(item["src"], field + ".src")
    if src is not None and adding:
        check_source(src, field + ".src")
    if src is not None and src.version != dst.version:
        raise NetnsError("src %s is not of the destination's family" % src, obj=field + ".src")
    metric = item.get("metric")
    if metric is None:
        metric = DEFAULT_METRIC[dst.version]
    elif isinstance(metric, bool) or not isinstance(metric, int) or not 0 <= metric < 2 ** 32:
        raise NetnsError("metric must be an integer 0..4294967295, not %r" % (metric,), obj=field + ".metric")
    onlink = item.get("onlink") or False
    if not isinstance(onlink, bool):
        raise NetnsError("onlink must be true or false", obj=field + ".onlink")
    if adding and dev is None and via is not None and (onlink or (via.version == 6 and via.is_link_local)):
        how = "with onlink" if onlink else "via the link-local address %s" % via
        raise NetnsError("a route %s needs its device (dev)" % how, obj=field + ".dev")
    return Route(dst, _table(item.get("table"), field + ".table"), metric, via, dev,
                 _scope(item.get("scope"), field + ".scope"), onlink, src)


def route_spec(netns: Optional[str], routes: List[Dict[str, Any]], state: str = "present",
               exclusive: bool = False, field: str = "routes") -> RouteSpec:
    """Validate raw input into a spec; raises NetnsError naming the field."""
    check_optional_netns(netns, "netns")
    if state not in ("present", "absent"):
        raise NetnsError("state must be 'present' or 'absent', not %r" % (state,), obj="state")
    if not isinstance(routes, (list, tuple)):
        raise NetnsError("must be a list of routes", obj=field)
    parsed = [parse_route(item, "%s[%d]" % (field, i), state == "present") for i, item in enumerate(routes)]
    seen: Dict[Tuple[int, str, int, int], int] = {}
    for i, route in enumerate(parsed):
        if route.identity in seen:
            raise NetnsError("duplicate route %s table %d metric %d (also at %s[%d])"
                             % (route.dst, route.table, route.metric, field, seen[route.identity]),
                             obj="%s[%d]" % (field, i))
        seen[route.identity] = i
    return RouteSpec(netns or None, tuple(parsed), state, exclusive)


# -- reading -------------------------------------------------------------------------------
def read_routes(kernel: Kernel, ns: Optional[str], version: int) -> List[Route]:
    """Unicast routes of one IP version, of every table but ``local``: one dump."""
    if not kernel.exists(ns):
        return []
    names = {link.index: name for name, link in links(kernel, ns).items()}
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    messages = kernel.netlink.dump(ns, "routes", family)
    result = []
    for msg in messages:
        table = msg.get_attr("RTA_TABLE") or msg["table"]
        if table == RT_TABLE_LOCAL or msg["type"] != RTN_UNICAST:
            continue
        dst = ip_network("%s/%d" % (msg.get_attr("RTA_DST") or ("0.0.0.0" if version == 4 else "::"), msg["dst_len"]))
        via, src = msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_PREFSRC")
        metric = msg.get_attr("RTA_PRIORITY")
        result.append(Route(dst, table, DEFAULT_METRIC[4] if metric is None else metric,
                            None if via is None else ip_address(via),
                            names.get(msg.get_attr("RTA_OIF")), msg["scope"],
                            bool(msg["flags"] & RTNH_F_ONLINK),
                            None if src is None else ip_address(src), msg["proto"]))
    return result


def routes(kernel: Kernel, ns: Optional[str], versions: Iterable[int] = (4, 6)) -> List[Route]:
    """Routes of ``ns`` of the given IP versions (each read once per run, until invalidated)."""
    result: List[Route] = []
    for version in versions:
        result += kernel.cache.get(ns, "routes-%d" % version, lambda n: read_routes(kernel, n, version))
    return result


def invalidate_routes(kernel: Kernel, ns: Optional[str]) -> None:
    for version in (4, 6):
        kernel.cache.invalidate(ns, "routes-%d" % version)


# -- planning ------------------------------------------------------------------------------
def route_key(ns: Optional[str], route: Route) -> str:
    return "%s table %d metric %d in %s" % ("default" if route.dst.prefixlen == 0 else route.dst,
                                            route.table, route.metric, ns_label(ns))


def _differs(want: Route, have: Route) -> bool:
    """Only what the declaration states is compared (an unstated dev or scope is the kernel's choice)."""
    return ((want.via != have.via) or (want.dev is not None and want.dev != have.dev)
            or (want.scope is not None and want.scope != have.scope) or (want.onlink != have.onlink)
            or (want.src is not None and want.src != have.src))


def _protected(route: Route) -> bool:
    return route.proto == RTPROT_KERNEL or (route.dst.version == 6 and (route.dst.is_link_local or route.dst.is_multicast))


def plan_route_set(spec: RouteSpec, current: List[Route]) -> List[Change]:
    """Pure: the changes that bring the routes of ``current`` to ``spec``."""
    by_id = {r.identity: r for r in current}
    changes: List[Change] = []
    for want in spec.routes:
        have = by_id.get(want.identity)
        if spec.state == "absent":
            if have is not None:
                changes.append(_change("delete", spec.netns, have, None))
        elif have is None:
            changes.append(_change("create", spec.netns, None, want))
        elif _differs(want, have):
            changes.append(_change("update", spec.netns, have, want))
    if spec.exclusive and spec.state == "present":
        scopes = {(r.table, r.dst.version) for r in spec.routes}
        wanted = {r.identity for r in spec.routes}
        for have in current:
            if (have.table, have.dst.version) in scopes and have.identity not in wanted and not _protected(have):
                changes.insert(0, _change("delete", spec.netns, have, None))
    return changes


def _change(action: str, ns: Optional[str], old: Optional[Route], new: Optional[Route]) -> Change:
    return Change("route", action, route_key(ns, new or old), None if old is None else old.as_dict(),
                  None if new is None else new.as_dict(), params=RouteParams(ns, new or old, old))


def plan_routes(kernel: Kernel, spec: RouteSpec, pending: Pending) -> List[Change]:
    ns_missing = not kernel.exists(spec.netns)
    # Declared routes and exclusivity are both per IP version: only those versions need reading.
    versions = sorted({route.dst.version for route in spec.routes})
    if spec.state == "absent":
        return [] if ns_missing else plan_route_set(spec, routes(kernel, spec.netns, versions))
    if ns_missing and not pending.has_namespace(spec.netns):
        raise NetnsError("namespace %s does not exist" % spec.netns, obj="routes")
    # a link an earlier change of the plan deletes (a purged veth, a replaced vxlan) takes its routes along
    current = [route for route in routes(kernel, spec.netns, versions) if (spec.netns, route.dev) not in pending.doomed_links]
    changes = plan_route_set(spec, current)
    if not ns_missing:
        _check_reachable(kernel, spec, pending, {_route_of(c).identity for c in changes if c.action != "delete"})
    return changes


def _check_reachable(kernel: Kernel, spec: RouteSpec, pending: Pending,
                     changing: Set[Tuple[int, str, int, int]]) -> None:
    """Devices and gateways of every declared route; what else the kernel checks as a route is
    added, for the routes this plan adds or replaces."""
    present = links(kernel, spec.netns)

    def up(dev: str) -> bool:
        return pending.links_up.get((spec.netns, dev), present[dev].up if dev in present else True)

    local = [a for a in addresses(kernel, spec.netns) if (spec.netns, a.dev) not in pending.doomed_links]
    local += [address for ns, address in pending.addresses if ns == spec.netns]
    # a link that is down has no connected routes: no gateway is reachable through it
    connected = [a.interface.network for a in local if up(a.dev)]
    connected += [network for ns, network in pending.networks if ns == spec.netns]
    on_down_links = {a.interface.network: a.dev for a in local if not up(a.dev)}
    for route in spec.routes:
        obj = "route " + route_key(spec.netns, route)
        if route.dev is not None and route.dev not in present:
            if pending.has_link(spec.netns, route.dev):
                continue
            raise NetnsError("device %s does not exist" % route.dev, obj=obj)
        if route.identity in changing:
            if route.dev is not None:
                _check_device_takes_route(spec.netns, route, present[route.dev], pending, obj)
            if route.src is not None:
                _check_source_is_local(spec.netns, route, local, pending, obj)
            if route.via is not None:
                _check_gateway_is_not_local(route, local, obj)
        if route.via is None or route.onlink or route.via.is_link_local:
            continue
        reachable = connected if route.identity in changing else connected + list(on_down_links)
        if not any(route.via in network for network in reachable):
            down = sorted(dev for network, dev in on_down_links.items() if route.via in network)
            if down:
                raise NetnsError("gateway %s is on the subnet of %s, which is down: the kernel takes no route "
                                 "through a link that is down" % (route.via, ", ".join(down)), obj=obj + ".via")
            if pending.assume_missing:
                pending.assumed.add("an address on the subnet of gateway %s in the %s" % (route.via, ns_label(spec.netns)))
                continue
            raise NetnsError("gateway %s is on no subnet of the %s (add an address there first, or set onlink)"
                             % (route.via, ns_label(spec.netns)), obj=obj)


def _check_device_takes_route(ns: Optional[str], route: Route, dev: Link, pending: Pending, obj: str) -> None:
    """The kernel takes no route on a link that is down, nor an IPv6 one on a link without IPv6."""
    if not pending.links_up.get((ns, dev.name), dev.up):
        raise NetnsError("device %s is down; the kernel takes no route on a link that is down" % dev.name,
                         obj=obj + ".dev")
    mtu = pending.link_mtus.get((ns, dev.name), dev.mtu)
    if route.dst.version == 6 and mtu < IPV6_MIN_MTU:
        raise NetnsError("device %s has an MTU of %d: a link has no IPv6 below %d" % (dev.name, mtu, IPV6_MIN_MTU),
                         obj=obj + ".dev")


def _check_gateway_is_not_local(route: Route, local: List[Address], obj: str) -> None:
    for address in local:
        network = address.interface.network
        if route.via == address.interface.ip and route.via.version == 6:
            raise NetnsError("gateway %s is an address of this namespace itself (on %s)" % (route.via, address.dev),
                             obj=obj + ".via")
        if route.via.version == 4 and network.prefixlen <= 30 and route.via == network.broadcast_address:
            raise NetnsError("gateway %s is the broadcast address of %s" % (route.via, network), obj=obj + ".via")


def _check_source_is_local(ns: Optional[str], route: Route, local: List[Address], pending: Pending, obj: str) -> None:
    """The kernel takes as src only an address the namespace holds (not tentative) when the route is added."""
    src = route.src
    holder = next((a for a in local if a.interface.ip == src), None)
    if holder is None:
        # on lo a whole IPv4 prefix is local, 127.0.0.0/8 among them
        on_lo = [a.interface.network for a in local if a.dev == LOOPBACK]
        if src.version == 4 and (src.is_loopback or any(src in network for network in on_lo)):
            return
        if pending.assume_missing:
            pending.assumed.add("address %s in the %s" % (src, ns_label(ns)))
            return
        raise NetnsError("src %s is no address of the %s; the kernel takes only a local address as source"
                         % (src, ns_label(ns)), obj=obj + ".src")
    if src.version == 6 and holder.tentative:
        raise NetnsError("src %s is tentative on %s (duplicate address detection has not ended; nodad avoids "
                         "it): the kernel refuses it as a source" % (src, holder.dev), obj=obj + ".src")
    if src.version == 6 and (src.is_link_local or src.is_loopback) and route.dev != holder.dev:
        raise NetnsError("src %s is a source only for routes on %s (dev)" % (src, holder.dev), obj=obj + ".src")


# -- applying ------------------------------------------------------------------------------
def _request(kernel: Kernel, ns: Optional[str], route: Route, full: bool) -> Dict[str, Any]:
    request: Dict[str, Any] = {"family": socket.AF_INET if route.dst.version == 4 else socket.AF_INET6,
                               "dst": str(route.dst.network_address), "dst_len": route.dst.prefixlen,
                               "table": route.table, "priority": route.metric}
    if not full:
        request["scope"] = RT_SCOPES["nowhere"]  # as `ip route del`: match the route whatever its scope
    else:
        if route.via is not None:
            request["gateway"] = str(route.via)
        if route.dev is not None:
            request["oif"] = index_of(kernel, ns, route.dev)
        if route.scope is not None:
            request["scope"] = route.scope
        if route.src is not None:
            request["prefsrc"] = str(route.src)
        if route.onlink:
            request["flags"] = RTNH_F_ONLINK
    return request


def route_report(kernel: Kernel, spec: RouteSpec) -> Dict[str, Any]:
    """The netns_route module's return value: the routes of the tables the task names."""
    tables = {r.table for r in spec.routes}
    return {"routes": [r.as_dict() for r in routes(kernel, spec.netns) if r.table in tables]
            if kernel.exists(spec.netns) else []}


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RouteParams(Params):
    ns: Optional[str]
    route: Route  # to add, replace with, or delete
    old: Optional[Route] = None  # what an update replaces


def _route_of(change: Change) -> Route:
    return params_of(change, RouteParams).route


class RouteKind(Kind):
    name = "route"
    params = (RouteParams,)
    spec = RouteSpec
    read = staticmethod(routes)
    plan = staticmethod(plan_routes)
    report = staticmethod(route_report)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = params_of(change, RouteParams)
        command = {"create": "add", "update": "replace", "delete": "del"}[change.action]
        with refusal("%s route" % command, "route " + change.key):
            request = _request(kernel, params.ns, params.route, change.action != "delete")
            kernel.netlink.requests(params.ns).route(command, **request)
        invalidate_routes(kernel, params.ns)

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, RouteParams)
        if change.action == "create":
            return self.replay(Change("route", "delete", change.key, params=params))
        if change.action == "delete":  # "replace": also right when rollback's second pass finds it back already
            return self.replay(Change("route", "update", change.key, params=params))
        if params.old is None:
            raise NetnsError("internal error: a route update without the route it replaces", obj=change.summary())
        return self.replay(Change("route", "update", change.key, params=RouteParams(params.ns, params.old)))


ROUTE = RouteKind()
