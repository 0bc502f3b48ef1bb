# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The topology format (version 1): parsing and whole-spec validation, before anything changes.

Every error names its path in the spec, e.g. ``namespaces[1].routes[0].via``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from ._netlink.constants import MACVLAN_MODES, RT_TABLE_MAIN
from .errors import NetnsError
from .kinds.address import AddressSpec, address_spec
from .kinds.device import DeviceSpec, device_spec
from .kinds.iptables import IptablesSpec, iptables_spec
from .kinds.namespace import LOOPBACK_STATES, NamespaceSpec, namespace_spec
from .kinds.nftables import NftablesSpec, nftables_spec
from .kinds.route import RouteSpec, route_spec
from .kinds.rule import RuleSpec, normalised_rule, rule_spec
from .kinds.veth import VethSpec, veth_spec
from .kinds.virtual_link import VirtualLinkSpec, virtual_link_spec
from .kinds.vxlan import KEYS as VXLAN_KEYS
from .kinds.vxlan import VxlanSpec, parse_vxlan, vxlan_spec
from .kinds.wireguard import KEYS as WIREGUARD_KEYS
from .kinds.wireguard import WireguardSpec, parse_wireguard, wireguard_spec
from .validation import (
    IPV6_MIN_MTU,
    LOOPBACK,
    check_gateway,
    check_host_address,
    check_ifname,
    check_int,
    check_link_mac,
    check_mac,
    check_mtu,
    check_netns_name,
    check_new_link_name,
    check_source,
    check_sysctl_key,
    check_sysctl_value,
    ip_address,
    ip_interface,
    ip_network,
    parse_address,
    parse_destination,
    parse_interface,
)

FORMAT_VERSION = 1
TOPOLOGY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LINK_TYPES = ("veth", "bridge", "vlan", "macvlan", "vxlan", "device", "wireguard")
# A systemd service unit, an instance of a template included (foo@bar.service), as systemd names
# them (unit_name_is_valid: 255 bytes at most); no leading '-' (it would read as an option).
SERVICE_UNIT = re.compile(r"[A-Za-z0-9_:\\][A-Za-z0-9_:.\\-]*(@[A-Za-z0-9_:.\\-]+)?\.service")
SERVICE_UNIT_MAX = 255
# The namespace of a service goes into the role's drop-in (NetworkNamespacePath=, BindReadOnlyPaths=
# SRC:DST): no ':' (the separator), '%' (a specifier), quotes or backslashes there.
SERVICE_NETNS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@-]*")

_KEYS = {
    "topology": {"name", "version", "namespaces", "links", "host", "services"},
    "namespace": {"name", "sysctls", "nameservers", "loopback", "addresses", "routes", "rules", "iptables", "nftables"},
    "host": {"addresses", "routes", "rules", "iptables", "nftables"},
    "service": {"unit", "netns", "dns", "restart_on_recreate"},
    "address": {"dev", "address", "nodad"},
    "route": {"dst", "via", "dev", "metric", "table", "scope", "onlink", "src"},
    "iptables": {"table", "ip_version", "chains"},
    "veth": {"type", "name", "netns", "peer", "peer_netns", "mtu", "peer_mtu", "mac", "peer_mac",
             "up", "peer_up"},
    "bridge": {"type", "name", "netns", "ports", "mtu", "mac", "up"},
    "vlan": {"type", "name", "netns", "parent", "parent_netns", "id", "mtu", "mac", "up"},
    "macvlan": {"type", "name", "netns", "parent", "parent_netns", "mode", "mtu", "mac", "up"},
    "wireguard": WIREGUARD_KEYS,
    "device": {"type", "name", "netns", "match", "mtu", "up"},
    "device_match": {"name", "mac"},
    "vxlan": VXLAN_KEYS,
}


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A link as it sits in one namespace (None: root)."""

    netns: Optional[str]
    name: str


LinkSpec = Union[VethSpec, VirtualLinkSpec, VxlanSpec, DeviceSpec, WireguardSpec]


@dataclasses.dataclass(frozen=True)
class Scope:
    """What the host section or one namespace declares besides links, as the kinds' specs."""

    netns: Optional[str]
    path: str
    addresses: Tuple[AddressSpec, ...]  # one per (device, nodad)
    routes: Optional[RouteSpec]
    iptables: Tuple[IptablesSpec, ...]
    nftables: Optional[NftablesSpec] = None
    rules: Optional[RuleSpec] = None


@dataclasses.dataclass
class Topology:
    """A validated spec: the normalised data (as records and diffs keep it), indexes, and, for a
    spec to apply, every object as its kind's spec."""

    name: str
    namespaces: List[Dict[str, Any]]
    links: List[Dict[str, Any]]
    host: Dict[str, Any]
    endpoints: Set[Endpoint]
    # carried, never acted on by the engine: the role writes a systemd drop-in for each
    services: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    namespace_specs: List[NamespaceSpec] = dataclasses.field(default_factory=list)
    link_specs: List[LinkSpec] = dataclasses.field(default_factory=list)  # in dependency order
    scope_specs: List[Scope] = dataclasses.field(default_factory=list)  # as scopes() lists them

    def scopes(self) -> List[Tuple[Optional[str], Dict[str, Any], str]]:
        """(netns, section, path) for the host section and every namespace, in spec order."""
        result: List[Tuple[Optional[str], Dict[str, Any], str]] = [(None, self.host, "host")]
        result += [(ns["name"], ns, "namespaces[%d]" % i) for i, ns in enumerate(self.namespaces)]
        return result


def _fail(path: str, message: str) -> NetnsError:
    return NetnsError(message, obj=path)


def _mapping(value: Any, path: str, kind: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "must be a mapping, not %s" % type(value).__name__)
    unknown = sorted(set(value) - _KEYS[kind])
    if unknown:
        raise _fail(path, "unknown key(s) %s; allowed: %s" % (", ".join(map(str, unknown)),
                                                              ", ".join(sorted(_KEYS[kind]))))
    return value


def _list(value: Any, path: str) -> List[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(path, "must be a list, not %s" % type(value).__name__)
    return value


def _bool(value: Any, path: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(path, "must be true or false, not %r" % (value,))
    return value


def _int(value: Any, path: str, low: int, high: int) -> Optional[int]:
    return check_int(value, path, low, high)


def parse_topology(data: Any, for_apply: bool = True) -> Topology:
    """Validate a whole topology; raises NetnsError naming the offending path. ``for_apply``:
    also refuse what the kernel would refuse part-way through applying it (False: a spec applied
    before, e.g. an ownership record's, that need only be understood)."""
    spec = _mapping(data, "topology", "topology")
    name = spec.get("name")
    if not isinstance(name, str) or not TOPOLOGY_NAME.fullmatch(name):
        raise _fail("name", "topology name must match %s, not %r" % (TOPOLOGY_NAME.pattern, name))
    version = spec.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise _fail("version", "unsupported format version %r (this collection reads %d)"
                    % (version, FORMAT_VERSION))
    namespaces = [_parse_namespace(ns, "namespaces[%d]" % i)
                  for i, ns in enumerate(_list(spec.get("namespaces"), "namespaces"))]
    _no_duplicates([ns["name"] for ns in namespaces], "namespaces", "namespace")
    declared = {ns["name"] for ns in namespaces}
    links = [_parse_link(link, "links[%d]" % i, declared)
             for i, link in enumerate(_list(spec.get("links"), "links"))]
    endpoints = _endpoints(links)
    _check_bridge_ports(links, endpoints)
    _check_devices(links, endpoints)
    _check_underlay_devs(links, endpoints)
    host = _parse_section(_mapping(spec.get("host") or {}, "host", "host"), "host", None)
    services = parse_services(spec.get("services"), declared)
    topology = Topology(name, namespaces, dependency_order(links), host, endpoints, services)
    if for_apply:
        _check_applicable(topology)
    for netns, section, path in topology.scopes():
        _check_section_refs(netns, section, path, endpoints)
    if for_apply:
        _check_fits(topology)
        _add_kind_specs(topology)
    return topology


def _add_kind_specs(topology: Topology) -> None:
    topology.namespace_specs = [
        namespace_spec(ns["name"], "present", ns.get("sysctls"), ns.get("nameservers"),
                       LOOPBACK_STATES[ns.get("loopback", "up")], path="namespaces[%d]" % i)
        for i, ns in enumerate(topology.namespaces)]
    declared = frozenset((end.netns, end.name) for end in topology.endpoints)
    topology.link_specs = [device_spec(item, declared) if item["type"] == "device" else _link_spec(item)
                           for item in topology.links]
    topology.scope_specs = [_scope(netns, section, path) for netns, section, path in topology.scopes()]


def _link_spec(item: Dict[str, Any]) -> LinkSpec:
    if item["type"] == "veth":
        return veth_spec(item["name"], item["peer"], netns=item.get("netns"), peer_netns=item.get("peer_netns"),
                         mtu=item.get("mtu"), peer_mtu=item.get("peer_mtu"), mac=item.get("mac"),
                         peer_mac=item.get("peer_mac"), up=item.get("up", True),
                         peer_up=item.get("peer_up", True), field=item.get("path", "links"))
    if item["type"] == "wireguard":
        return wireguard_spec(item)
    if item["type"] == "vxlan":
        return vxlan_spec(item)
    return virtual_link_spec(item)


def _scope(netns: Optional[str], section: Dict[str, Any], path: str) -> Scope:
    by_dev: Dict[Tuple[str, bool], List[str]] = {}
    for item in section.get("addresses", []):
        by_dev.setdefault((item["dev"], item.get("nodad", False)), []).append(item["address"])
    routes = [{k: v for k, v in r.items() if k != "path"} for r in section.get("routes", [])]
    rules = section.get("rules", [])
    return Scope(
        netns, path,
        tuple(address_spec(netns, dev, addresses, nodad=nodad) for (dev, nodad), addresses in by_dev.items()),
        route_spec(netns, routes) if routes else None,
        tuple(iptables_spec(netns, t["ip_version"], t["table"], t["chains"], field=t.get("path", "iptables"))
              for t in section.get("iptables", [])),
        nftables_spec(netns, section["nftables"], path + ".nftables") if section.get("nftables") else None,
        rule_spec(netns, rules, field=path + ".rules") if rules else None)


def _parse_namespace(value: Any, path: str) -> Dict[str, Any]:
    ns = _mapping(value, path, "namespace")
    check_netns_name(ns.get("name"), path + ".name")
    sysctls = ns.get("sysctls") or {}
    if not isinstance(sysctls, dict):
        raise _fail(path + ".sysctls", "must be a mapping of net.* keys to values")
    for key, val in sysctls.items():
        check_sysctl_key(key, "%s.sysctls.%s" % (path, key))
        if val is None or isinstance(val, (dict, list)):
            raise _fail("%s.sysctls.%s" % (path, key), "needs a scalar value")
    servers = ns.get("nameservers")
    if servers is not None:
        for i, server in enumerate(_list(servers, path + ".nameservers")):
            parse_address(server, "%s.nameservers[%d]" % (path, i))
    loopback = ns.get("loopback", "up")
    if loopback not in ("up", "down", "unmanaged"):
        raise _fail(path + ".loopback", "must be up, down or unmanaged, not %r" % (loopback,))
    parsed = dict(ns, sysctls=dict(sysctls), loopback=loopback)
    parsed.update(_parse_section(ns, path, ns["name"]))
    return parsed


def _parse_section(section: Dict[str, Any], path: str, netns: Optional[str]) -> Dict[str, Any]:
    addresses = []
    seen_ips: Dict[str, str] = {}
    for i, raw in enumerate(_list(section.get("addresses"), path + ".addresses")):
        where = "%s.addresses[%d]" % (path, i)
        item = _mapping(raw, where, "address")
        check_ifname(item.get("dev"), where + ".dev")
        iface = parse_interface(item.get("address"), where + ".address")
        ip = str(iface.ip)
        if ip in seen_ips:
            raise _fail(where + ".address", "%s is declared twice in %s (also at %s)"
                        % (ip, "the host" if netns is None else "namespace " + netns, seen_ips[ip]))
        seen_ips[ip] = where
        addresses.append({"dev": item["dev"], "address": str(iface), "nodad": _bool(item.get("nodad"), where + ".nodad", False)})
    routes = [_parse_route(raw, "%s.routes[%d]" % (path, i))
              for i, raw in enumerate(_list(section.get("routes"), path + ".routes"))]
    _no_duplicates([(r["dst"], r["table"], r["metric"]) for r in routes], path + ".routes", "route (dst, table, metric)")
    rules = [normalised_rule(raw, "%s.rules[%d]" % (path, i))
             for i, raw in enumerate(_list(section.get("rules"), path + ".rules"))]
    rule_spec(netns, rules, field=path + ".rules")  # duplicates, named by their path
    iptables = []
    for i, raw in enumerate(_list(section.get("iptables"), path + ".iptables")):
        where = "%s.iptables[%d]" % (path, i)
        item = _mapping(raw, where, "iptables")
        if item.get("table", "filter") not in ("filter", "nat", "mangle", "raw"):
            raise _fail(where + ".table", "must be filter, nat, mangle or raw, not %r" % (item.get("table"),))
        if item.get("ip_version", "ipv4") not in ("ipv4", "ipv6"):
            raise _fail(where + ".ip_version", "must be ipv4 or ipv6, not %r" % (item.get("ip_version"),))
        chains = _list(item.get("chains"), where + ".chains")
        iptables.append({"table": item.get("table", "filter"), "ip_version": item.get("ip_version", "ipv4"),
                         "chains": chains, "path": where})
    _no_duplicates([(t["ip_version"], t["table"]) for t in iptables], path + ".iptables", "table")
    nftables = _list(section.get("nftables"), path + ".nftables")
    parsed = nftables_spec(netns, nftables, path + ".nftables")
    return {"addresses": addresses, "routes": routes, "rules": rules, "iptables": iptables,
            "nftables": [{"family": t.family, "table": t.table, "definition": t.definition} for t in parsed.tables]}


def parse_services(value: Any, declared: Set[str]) -> List[Dict[str, Any]]:
    """The ``services`` section: systemd units that run inside a declared namespace, each once,
    with their options filled in (dns, restart_on_recreate: true)."""
    services = [_parse_service(raw, "services[%d]" % i, declared) for i, raw in enumerate(_list(value, "services"))]
    _no_duplicates([s["unit"] for s in services], "services", "unit")
    return services


def _parse_service(raw: Any, where: str, declared: Set[str]) -> Dict[str, Any]:
    item = _mapping(raw, where, "service")
    unit = item.get("unit")
    if not isinstance(unit, str) or not SERVICE_UNIT.fullmatch(unit) or len(unit) > SERVICE_UNIT_MAX:
        raise _fail(where + ".unit", "must be a systemd service unit name (%s, at most %d characters, e.g. "
                    "web.service or web@blue.service), not %r" % (SERVICE_UNIT.pattern, SERVICE_UNIT_MAX, unit))
    netns = item.get("netns")
    check_netns_name(netns, where + ".netns")
    if netns not in declared:
        raise _fail(where + ".netns", "namespace %r is not declared under namespaces" % netns)
    if not SERVICE_NETNS.fullmatch(netns):
        raise _fail(where + ".netns", "namespace %r cannot be named in a unit file; a service's namespace "
                    "must match %s" % (netns, SERVICE_NETNS.pattern))
    return {"unit": unit, "netns": netns, "dns": _bool(item.get("dns"), where + ".dns", True),
            "restart_on_recreate": _bool(item.get("restart_on_recreate"), where + ".restart_on_recreate", True)}


def _parse_route(raw: Any, where: str) -> Dict[str, Any]:
    item = _mapping(raw, where, "route")
    via = None if item.get("via") is None else parse_address(item["via"], where + ".via")
    family = None if via is None else via.version
    dst = parse_destination(item.get("dst", "default"), where + ".dst", family)
    if via is not None and via.version != dst.version:
        raise _fail(where + ".via", "gateway %s is IPv%d but the destination %s is IPv%d"
                    % (via, via.version, dst, dst.version))
    if item.get("dev") is not None:
        check_ifname(item["dev"], where + ".dev")
    if via is None and item.get("dev") is None:
        raise _fail(where, "a route needs a gateway (via) or a device (dev)")
    src = None if item.get("src") is None else parse_address(item["src"], where + ".src")
    return {
        "dst": str(dst), "via": None if via is None else str(via), "dev": item.get("dev"),
        "metric": _int(item.get("metric"), where + ".metric", 0, 2 ** 32 - 1),
        "table": _int(item.get("table"), where + ".table", 1, 2 ** 32 - 1) or RT_TABLE_MAIN,
        "scope": item.get("scope"), "onlink": _bool(item.get("onlink"), where + ".onlink", False),
        "src": None if src is None else str(src), "path": where,
    }


def _parse_link(raw: Any, where: str, declared: Set[str]) -> Dict[str, Any]:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in LINK_TYPES:
        raise _fail(where + ".type", "must be one of %s, not %r" % (", ".join(LINK_TYPES), kind))
    item = dict(_mapping(raw, where, kind))
    for field in ("netns", "peer_netns", "parent_netns", "underlay_netns"):
        value = item.get(field)
        if value is not None and value != "":
            check_netns_name(value, "%s.%s" % (where, field))
            if value not in declared:
                raise _fail("%s.%s" % (where, field), "namespace %r is not declared under namespaces" % value)
        else:
            item[field] = None
    check_ifname(item.get("name"), where + ".name")
    check_mtu(item.get("mtu"), where + ".mtu")
    item["mac"] = check_mac(item.get("mac"), where + ".mac")
    item["up"] = _bool(item.get("up"), where + ".up", True)
    if kind == "veth":
        check_ifname(item.get("peer"), where + ".peer")
        check_mtu(item.get("peer_mtu"), where + ".peer_mtu")
        item["peer_mac"] = check_mac(item.get("peer_mac"), where + ".peer_mac")
        item["peer_up"] = _bool(item.get("peer_up"), where + ".peer_up", True)
        if item["peer"] == item["name"] and item["peer_netns"] == item["netns"]:
            raise _fail(where + ".peer", "both ends are %r in the same namespace" % item["name"])
    elif kind == "wireguard":
        item.update(parse_wireguard(item, where))
    elif kind == "device":
        _parse_device(item, where)
    elif kind == "vxlan":
        parse_vxlan(item, where)
    elif kind == "bridge":
        item["ports"] = [check_ifname(p, "%s.ports[%d]" % (where, i))
                         for i, p in enumerate(_list(item.get("ports"), where + ".ports"))]
    else:
        check_ifname(item.get("parent"), where + ".parent")
        if kind == "vlan":
            item["id"] = _int(item.get("id"), where + ".id", 1, 4094)
            if item["id"] is None:
                raise _fail(where + ".id", "a vlan needs an id (1..4094)")
        else:
            item["mode"] = item.get("mode") or "bridge"
            if item["mode"] not in MACVLAN_MODES:
                raise _fail(where + ".mode", "must be one of %s" % ", ".join(MACVLAN_MODES))
    item["path"] = where
    return item


def _parse_device(item: Dict[str, Any], where: str) -> None:
    """A host device: moved into ``netns`` (required), found by exactly one of match.name, match.mac."""
    if item["netns"] is None:
        raise _fail(where + ".netns", "a device is moved into a namespace: name one declared under namespaces")
    match = _mapping(item.get("match"), where + ".match", "device_match")
    if len(match) != 1:
        raise _fail(where + ".match", "needs exactly one of name or mac, not %s"
                    % (" and ".join(sorted(match)) if match else "none"))
    if "name" in match:
        check_ifname(match["name"], where + ".match.name")
        if match["name"] == LOOPBACK:
            raise _fail(where + ".match.name", "the loopback device cannot be moved to another namespace")
        item["match"] = {"name": match["name"]}
    else:
        item["match"] = {"mac": check_link_mac(match["mac"], where + ".match.mac")}


def _check_devices(links: List[Dict[str, Any]], endpoints: Set[Endpoint]) -> None:
    """No two entries match one device, and a device is none of the links the topology declares."""
    seen: Dict[Tuple[str, str], str] = {}
    for link in links:
        if link["type"] != "device":
            continue
        (field, value), = link["match"].items()
        where = "%s.match.%s" % (link["path"], field)
        if (field, value) in seen:
            raise _fail(where, "%s matches the same device as %s" % (value, seen[(field, value)]))
        seen[(field, value)] = where
        if field == "name" and Endpoint(None, value) in endpoints:
            raise _fail(where, "link %s in the root namespace is declared by this topology; a device is a link "
                        "made outside it" % value)


def link_ends(link: Dict[str, Any]) -> List[Endpoint]:
    """Where a declared link sits: both ends of a veth, the one end of any other kind."""
    ends = [Endpoint(link.get("netns"), link["name"])]
    if link["type"] == "veth":
        ends.append(Endpoint(link.get("peer_netns"), link["peer"]))
    return ends


def _needs(link: Dict[str, Any]) -> List[Endpoint]:
    """The links that must exist before ``link``: a bridge's ports, a vlan's or macvlan's parent."""
    if link["type"] == "bridge":
        return [Endpoint(link.get("netns"), port) for port in link.get("ports") or []]
    if link.get("parent"):
        return [Endpoint(link.get("parent_netns"), link["parent"])]
    if link["type"] == "vxlan" and link.get("dev"):
        return [Endpoint(link.get("underlay_netns"), link["dev"])]
    return []


def dependency_order(links: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``links`` in declaration order, except that each comes after the declared links it needs,
    so a bridge may be declared before its ports (removal runs this order backwards)."""
    provider = {end: i for i, link in enumerate(links) for end in link_ends(link)}
    ordered: List[Dict[str, Any]] = []
    placed: Set[int] = set()

    def place(i: int, visiting: Set[int]) -> None:
        if i in placed or i in visiting:
            return
        for end in _needs(links[i]):
            if end in provider:
                place(provider[end], visiting | {i})
        placed.add(i)
        ordered.append(links[i])

    for i in range(len(links)):
        place(i, set())
    return ordered


def _endpoints(links: List[Dict[str, Any]]) -> Set[Endpoint]:
    seen: Dict[Endpoint, str] = {}
    for link in links:
        for end, field in zip(link_ends(link), ("name", "peer")):
            where = link["path"] + "." + field
            if end in seen:
                raise _fail(where, "link %s in %s is declared twice (also at %s)"
                            % (end.name, "the root namespace" if end.netns is None else "namespace " + end.netns,
                               seen[end]))
            seen[end] = where
    return set(seen)


def _check_bridge_ports(links: List[Dict[str, Any]], endpoints: Set[Endpoint]) -> None:
    owners: Dict[Endpoint, str] = {}
    for link in links:
        if link["type"] != "bridge":
            continue
        for i, port in enumerate(link["ports"]):
            end = Endpoint(link["netns"], port)
            where = "%s.ports[%d]" % (link["path"], i)
            if end not in endpoints or port == link["name"]:
                raise _fail(where, "port %s is not a link declared in the bridge's namespace" % port)
            if end in owners:
                raise _fail(where, "port %s is already a port of %s" % (port, owners[end]))
            owners[end] = link["path"]


def _check_underlay_devs(links: List[Dict[str, Any]], endpoints: Set[Endpoint]) -> None:
    """A vxlan's dev in a declared namespace is a link declared there (in the root namespace it may
    be a physical device)."""
    for link in links:
        underlay = link.get("underlay_netns")
        if link["type"] == "vxlan" and link.get("dev") and underlay is not None \
                and Endpoint(underlay, link["dev"]) not in endpoints:
            raise _fail(link["path"] + ".dev", "link %s is not declared in namespace %s (a vxlan's dev is a link "
                        "of its underlay namespace)" % (link["dev"], underlay))


def _check_section_refs(netns: Optional[str], section: Dict[str, Any], path: str, endpoints: Set[Endpoint]) -> None:
    """Addresses on declared links (or lo, or the host's own devices), gateways on declared subnets."""
    subnets = [ip_interface(a["address"]).network for a in section["addresses"]]
    for i, address in enumerate(section["addresses"]):
        if netns is not None and address["dev"] != "lo" and Endpoint(netns, address["dev"]) not in endpoints:
            raise _fail("%s.addresses[%d].dev" % (path, i),
                        "link %s is not declared in namespace %s" % (address["dev"], netns))
    for route in section["routes"]:
        if netns is not None and route["dev"] not in (None, "lo") and Endpoint(netns, route["dev"]) not in endpoints:
            raise _fail(route["path"] + ".dev", "link %s is not declared in namespace %s" % (route["dev"], netns))
        if route["via"] is not None and not route["onlink"] and netns is not None:
            gateway = ip_address(route["via"])
            if not gateway.is_link_local and not any(gateway in subnet for subnet in subnets):
                raise _fail(route["path"] + ".via", "gateway %s is on no subnet declared in namespace %s "
                            "(declare an address there, or set onlink)" % (gateway, netns))


def _no_duplicates(values: List[Any], path: str, what: str) -> None:
    seen: Set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise _fail("%s[%d]" % (path, i), "duplicate %s %s" % (what, value if not isinstance(value, tuple)
                                                                   else "/".join(str(v) for v in value)))
        seen.add(value)


# -- what the kernel would refuse half-way: found here, before the first change ----------------
def _check_applicable(topology: Topology) -> None:
    """Each value on its own."""
    for i, ns in enumerate(topology.namespaces):
        for key, value in ns["sysctls"].items():
            check_sysctl_value(value, "namespaces[%d].sysctls.%s" % (i, key))
    for link in topology.links:
        _check_link_applicable(link)
    for _netns, section, path in topology.scopes():
        for i, address in enumerate(section["addresses"]):
            check_host_address(ip_interface(address["address"]), address["dev"], "%s.addresses[%d].address" % (path, i))
        for route in section["routes"]:
            _check_route_applicable(route)


def _check_fits(topology: Topology) -> None:
    """Addresses and routes against the links and addresses they need."""
    ends = _end_facts(topology)
    for netns, section, path in topology.scopes():
        _check_addresses_fit(netns, section, path, ends)
        for route in section["routes"]:
            _check_route_fits(netns, section, route, ends)


def _check_link_applicable(link: Dict[str, Any]) -> None:
    where = link["path"]
    check_new_link_name(link["name"], where + ".name")
    check_link_mac(link["mac"], where + ".mac")
    if link["type"] == "veth":
        check_new_link_name(link["peer"], where + ".peer")
        check_link_mac(link["peer_mac"], where + ".peer_mac")
    if link["type"] in ("vlan", "macvlan") and link["parent"] == LOOPBACK:
        raise _fail(where + ".parent", "a %s needs an Ethernet parent, not the loopback" % link["type"])


def _check_route_applicable(route: Dict[str, Any]) -> None:
    where = route["path"]
    via = None if route["via"] is None else check_gateway(ip_address(route["via"]), where + ".via")
    if route["dev"] is None and via is not None and (route["onlink"] or (via.version == 6 and via.is_link_local)):
        raise _fail(where + ".dev", "a route %s needs its device (dev)"
                    % ("with onlink" if route["onlink"] else "via the link-local address %s" % via))
    if route["src"] is not None:
        src = check_source(ip_address(route["src"]), where + ".src")
        dst = ip_network(route["dst"])
        if src.version != dst.version:
            raise _fail(where + ".src", "src %s is IPv%d but the destination %s is IPv%d"
                        % (src, src.version, dst, dst.version))


@dataclasses.dataclass(frozen=True)
class _EndFacts:
    """A link end as the topology leaves it, when that is down or below IPv6's MTU."""

    mtu: Optional[int]
    mtu_from: str  # the field that sets that MTU
    up: Optional[bool]


def _end_facts(topology: Topology) -> Dict[Endpoint, _EndFacts]:
    """The link ends that are down or have an MTU below 1280; the others take whatever the
    checks ask (most topologies have none of these, and their checks then cost nothing)."""
    facts = {Endpoint(ns["name"], LOOPBACK): _EndFacts(None, "", False)
             for ns in topology.namespaces if ns["loopback"] == "down"}
    for link in topology.links:  # in dependency order: parents and ports first
        fields = ("mtu", "peer_mtu") if link["type"] == "veth" else ("mtu",)
        for end, field, up in zip(link_ends(link), fields, (link["up"], link.get("peer_up"))):
            mtu, mtu_from = link.get(field), "%s.%s" % (link["path"], field)
            if mtu is None:
                mtu, mtu_from = _inherited_mtu(link, facts)
            if up is False or (mtu is not None and mtu < IPV6_MIN_MTU):
                facts[end] = _EndFacts(mtu, mtu_from, up)
    return facts


def _inherited_mtu(link: Dict[str, Any], facts: Dict[Endpoint, _EndFacts]) -> Tuple[Optional[int], str]:
    """A vlan or macvlan starts with its parent's MTU; a bridge follows its smallest port's."""
    known = [facts[end] for end in _needs(link) if end in facts and facts[end].mtu is not None] if facts else []
    if not known:
        return None, ""
    lowest = min(known, key=lambda fact: fact.mtu or 0)
    return lowest.mtu, lowest.mtu_from


def _check_addresses_fit(netns: Optional[str], section: Dict[str, Any], path: str,
                         ends: Dict[Endpoint, _EndFacts]) -> None:
    for i, address in enumerate(section["addresses"] if ends else []):
        if ip_interface(address["address"]).version != 6:
            continue
        end = ends.get(Endpoint(netns, address["dev"]))
        if end is not None and _below_ipv6_mtu(end):
            raise _fail("%s.addresses[%d].address" % (path, i), "link %s has no IPv6 with an MTU of %d (%s); "
                        "IPv6 needs at least %d" % (address["dev"], end.mtu, end.mtu_from, IPV6_MIN_MTU))


def _below_ipv6_mtu(end: _EndFacts) -> bool:
    return end.mtu is not None and end.mtu < IPV6_MIN_MTU


def _check_route_fits(netns: Optional[str], section: Dict[str, Any], route: Dict[str, Any],
                      ends: Dict[Endpoint, _EndFacts]) -> None:
    where = route["path"]
    end = ends.get(Endpoint(netns, route["dev"])) if route["dev"] is not None and ends else None
    if end is not None and end.up is False:
        raise _fail(where + ".dev", "link %s is declared down; the kernel takes no route on a link that is down"
                    % route["dev"])
    if end is not None and ip_network(route["dst"]).version == 6 and _below_ipv6_mtu(end):
        raise _fail(where + ".dev", "link %s has no IPv6 with an MTU of %d (%s); IPv6 needs at least %d"
                    % (route["dev"], end.mtu, end.mtu_from, IPV6_MIN_MTU))
    if route["via"] is not None:
        _check_gateway_fits(netns, section, route, ends)
    if route["src"] is not None and netns is not None:
        _check_source_is_local(netns, section, route)


def _check_gateway_fits(netns: Optional[str], section: Dict[str, Any], route: Dict[str, Any],
                        ends: Dict[Endpoint, _EndFacts]) -> None:
    where, gateway = route["path"] + ".via", ip_address(route["via"])
    holders = [(a, ip_interface(a["address"])) for a in section["addresses"]]
    holders = [(a, iface) for a, iface in holders if iface.version == gateway.version and gateway in iface.network]
    for address, iface in holders:
        if gateway.version == 6 and gateway == iface.ip:
            raise _fail(where, "gateway %s is an address of this namespace itself (on %s)" % (gateway, address["dev"]))
        if gateway.version == 4 and iface.network.prefixlen <= 30 and gateway == iface.network.broadcast_address:
            raise _fail(where, "gateway %s is the broadcast address of %s" % (gateway, iface.network))
    if holders and ends and not route["onlink"] and not gateway.is_link_local and all(
            getattr(ends.get(Endpoint(netns, a["dev"])), "up", None) is False for a, _iface in holders):
        raise _fail(where, "gateway %s is only on the subnet of link(s) declared down (%s); the kernel takes no "
                    "route through a link that is down" % (gateway, ", ".join(sorted({a["dev"] for a, _iface in holders}))))


def _check_source_is_local(netns: str, section: Dict[str, Any], route: Dict[str, Any]) -> None:
    """The kernel takes as src only an address the namespace holds when the route is added."""
    where, src = route["path"] + ".src", ip_address(route["src"])
    holder = next((a for a in section["addresses"] if ip_interface(a["address"]).ip == src), None)
    if holder is None:
        # on lo a whole IPv4 prefix is local, 127.0.0.0/8 as soon as lo is up
        local = [ip_interface(a["address"]).network for a in section["addresses"] if a["dev"] == LOOPBACK]
        if section.get("loopback", "up") == "up":
            local.append(ip_interface("127.0.0.1/8").network)
        if src.version == 4 and any(src in network for network in local if network.version == 4):
            return
        raise _fail(where, "src %s is no address declared in namespace %s; the kernel takes only a local "
                    "address as source" % (src, netns))
    if src.version == 6 and holder["dev"] != LOOPBACK and not holder["nodad"]:
        raise _fail(where, "src %s needs nodad: true on its address: until duplicate address detection ends the "
                    "kernel refuses it as a source, and the route is added right after the address" % src)
    if src.version == 6 and (src.is_link_local or src.is_loopback) and route["dev"] != holder["dev"]:
        raise _fail(where, "src %s is a source only for routes on %s (dev)" % (src, holder["dev"]))
