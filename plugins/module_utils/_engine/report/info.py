# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the kernel holds, in one place: every named namespace (or those asked for), the root
namespace and the anonymous namespaces processes hold, with links (veth peers resolved across
namespaces), addresses, routes of all tables, policy routing rules, non-default sysctls and iptables
rules.

Reads only: a namespace is never created (``Kernel`` opens existing ones with flags=0).
``spec_from_info`` turns the result into a topology spec (format version 1) that applies back.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Dict, List, Optional, Set, Tuple

from .._netlink.constants import MACVLAN_MODES, RT_TABLE_MAIN, RTPROT_KERNEL, RTPROT_RA
from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import as_list, attr, refusal
from ..kinds.address_state import addresses
from ..kinds.iptables import TOOLS, cached_tables, prefetch_tables
from ..kinds.iptables_rules import declared_text
from ..kinds.link import Link, links
from ..kinds.namespace import read_nameservers, read_sysctls
from ..kinds.nftables import read_nftables
from ..kinds.route import DEFAULT_METRIC, routes
from ..kinds.rule import PRIORITY_MAX, PRIORITY_MIN, rules
from ..kinds.veth import linked, peer_of
from ..kinds.wireguard import wireguard_report
from ..kinds.vxlan import ELSEWHERE, underlay_of
from ..system import netns_mounts, procfs, thread_netns

# The sysctls netns_info reports when they differ from a new namespace's value (read in a scratch
# namespace, so "default" is this kernel's own).
SYSCTL_KEYS = [
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
    "net.ipv6.conf.all.forwarding",
    "net.ipv6.conf.all.disable_ipv6",
    "net.ipv6.conf.default.disable_ipv6",
]
# Routes the kernel adds on its own: for an address or from a router advertisement.
KERNEL_ROUTE_PROTOCOLS = {RTPROT_KERNEL, RTPROT_RA}


def default_sysctls() -> Dict[str, Optional[str]]:
    """The documented keys as a brand-new namespace has them on this kernel."""
    with Kernel() as scratch_kernel, thread_netns.scratch_namespace():
        return read_sysctls(scratch_kernel, None, SYSCTL_KEYS)


def _link_info(kernel: Kernel, ns: Optional[str], link: Link, by_index: Dict[int, str]) -> Dict[str, Any]:
    info: Dict[str, Any] = dict(link.as_dict(), index=link.index, master=by_index.get(link.master or -1),
                                peer=None, parent=None)
    if link.kind == "veth":
        found = peer_of(kernel, ns, link, [])
        if found is not None:
            info["peer"] = {"netns": found[0], "name": found[1].name}
    elif link.kind in ("vlan", "macvlan") and link.peer_index is not None:
        info["parent"] = _parent(kernel, ns, link)
        info.update(_kind_data(kernel, ns, link))
    elif link.kind in ("wireguard", "tun"):
        info.update(wireguard_report(kernel, ns, link))
    elif link.kind == "vxlan":
        info["vxlan"] = underlay_of(kernel, ns, link)
    return info


def _kind_data(kernel: Kernel, ns: Optional[str], link: Link) -> Dict[str, Any]:
    """A vlan's id or a macvlan's mode (not in the link dump the planners share)."""
    with refusal("get link", link.name):
        msg = as_list(kernel.netlink.ipr(ns).get_links(link.index))[0]
    if link.kind == "vlan":
        return {"vlan_id": attr(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VLAN_ID")}
    mode = attr(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_MACVLAN_MODE")
    return {"mode": next((name for name, value in MACVLAN_MODES.items() if value == mode), mode)}


def _parent(kernel: Kernel, ns: Optional[str], link: Link) -> Optional[Dict[str, Any]]:
    found = linked(kernel, ns, link, [None])
    return None if found is None else {"netns": found[0], "name": found[1].name}


def _iptables(kernel: Kernel, ns: Optional[str]) -> Dict[str, Dict[str, Any]]:
    """{ip_version: {table: {chain: {policy, rules}}}} of the tables that exist in ``ns``."""
    result: Dict[str, Dict[str, Any]] = {}
    for version in sorted(TOOLS):
        tables = cached_tables(kernel, ns, version)
        result[version] = {
            name: {chain.name: {"policy": chain.policy, "rules": chain.texts()} for chain in table.chains.values()}
            for name, table in sorted(tables.items())}
    return result


NFTABLES_DETAIL = ("none", "tables", "ruleset")


def _nftables(kernel: Kernel, ns: Optional[str], detail: str) -> Optional[List[Dict[str, Any]]]:
    """[{family, table}] of the nftables tables in ``ns`` (with ``ruleset``: each with its objects as
    nft lists them in JSON, without handles); None where nftables cannot be read (no nft on the host)."""
    try:
        tables = read_nftables(kernel, ns)
    except NetnsError:
        return None
    return [dict({"family": family, "table": name}, **({"ruleset": objects} if detail == "ruleset" else {}))
            for (family, name), objects in sorted(tables.items())]


def namespace_info(kernel: Kernel, ns: Optional[str], defaults: Dict[str, Optional[str]],
                   with_iptables: bool = True, nftables: str = "tables") -> Dict[str, Any]:
    """Links, addresses, routes (all tables), policy routing rules, non-default sysctls, iptables
    rules and nftables tables of one namespace."""
    current = links(kernel, ns)
    by_index = {link.index: name for name, link in current.items()}
    values = read_sysctls(kernel, ns, SYSCTL_KEYS)
    info: Dict[str, Any] = {
        "links": [_link_info(kernel, ns, link, by_index) for link in sorted(current.values(), key=lambda l: l.index)],
        "addresses": [{"dev": a.dev, "address": str(a.interface)} for a in addresses(kernel, ns)],
        "routes": [dict(r.as_dict(), protocol=r.proto) for r in routes(kernel, ns)],
        "rules": [r.as_dict() for r in rules(kernel, ns)],
        "sysctls": {key: value for key, value in values.items() if value is not None and value != defaults.get(key)},
    }
    if with_iptables:
        info["iptables"] = _iptables(kernel, ns)
    if nftables != "none":
        info["nftables"] = _nftables(kernel, ns, nftables)
    return info


def gather(kernel: Kernel, names: Optional[List[str]] = None, with_iptables: bool = True,
           nftables: str = "tables") -> Dict[str, Any]:
    """Everything netns_info returns: ``namespaces`` (named), ``host`` (the root namespace) and
    ``anonymous`` (namespaces processes hold that have no name under /run/netns).

    Others may delete namespaces meanwhile: each is opened first and read through the descriptor
    held, and one no longer there under its name when all is read is left out (``missing`` if
    asked for)."""
    inodes = _held_namespaces(kernel)
    wanted = sorted(inodes) if names is None else [n for n in names if n in inodes]
    defaults = default_sysctls()
    pids = procfs.pids_by_netns_inode()
    if with_iptables:
        prefetch_tables(kernel, [(ns, v) for ns in [None] + wanted for v in sorted(TOOLS)])
    entries = []
    for name in wanted:
        entry = {"name": name, "id": inodes[name], "path": netns_mounts.netns_path(name),
                 "nsid": kernel.nsid(None, name), "pids": pids.get(inodes[name], []),
                 "nameservers": read_nameservers(name)[0]}
        entry.update(namespace_info(kernel, name, defaults, with_iptables, nftables))
        entries.append(entry)
    root_inode = os.stat("/proc/self/ns/net").st_ino  # the namespace the engine runs in
    host = {"id": root_inode, "pids": len(pids.get(root_inode, []))}
    host.update(namespace_info(kernel, None, defaults, with_iptables, nftables))
    still = {name: inode for name, inode in inodes.items() if _named(name) == inode}
    result: Dict[str, Any] = {
        "namespaces": [entry for entry in entries if entry["name"] in still],
        "missing": [n for n in names or [] if n not in still],
        "host": host}
    named = set(still.values()) | {root_inode}
    result["anonymous"] = [{"id": inode, "pids": held} for inode, held in sorted(pids.items()) if inode not in named]
    return result


def _held_namespaces(kernel: Kernel) -> Dict[str, int]:
    """Open every named namespace (the session holds it from now on, even if its name goes);
    returns the inode of each, without those deleted since they were listed."""
    inodes: Dict[str, int] = {}
    for name in sorted(kernel.namespaces()):
        try:
            inodes[name] = os.fstat(kernel.fd(name)).st_ino
        except NetnsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            kernel.forget_namespace(name)
    return inodes


def _named(name: str) -> Optional[int]:
    """The inode of the namespace under ``name`` now, None if there is none."""
    try:
        return netns_mounts.namespace_inode(name) if netns_mounts.namespace_exists(name) else None
    except OSError:
        return None


# -- back to a topology spec -------------------------------------------------------------------
def _is_link_local(address: str) -> bool:
    return address.startswith("fe80:")


def _spec_addresses(entry: Dict[str, Any], devs: Set[str]) -> List[Dict[str, Any]]:
    return [{"dev": a["dev"], "address": a["address"]} for a in entry["addresses"]
            if a["dev"] in devs and not _is_link_local(a["address"])]


def _spec_routes(entry: Dict[str, Any], devs: Set[str]) -> List[Dict[str, Any]]:
    result = []
    for route in entry["routes"]:
        if route.get("protocol") in KERNEL_ROUTE_PROTOCOLS or route.get("dev") not in devs | {None}:
            continue
        if route["dst"].startswith("fe80:") or route["dst"].startswith("ff00:"):
            continue
        item = {k: v for k, v in route.items() if k != "protocol"}
        if item.get("table") == RT_TABLE_MAIN:
            del item["table"]
        if item.get("metric") in DEFAULT_METRIC.values():
            del item["metric"]
        result.append(item)
    return result


def _spec_rules(entry: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The rules a topology can declare: not the kernel's default ones, none with other selectors."""
    result = []
    for rule in entry.get("rules", []):
        if rule.get("other") or not PRIORITY_MIN <= rule["priority"] <= PRIORITY_MAX:
            continue
        item = dict(rule)
        if item.get("from") or item.get("to"):
            del item["family"]  # the addresses say it
        if item.get("fwmask") == "0xffffffff":
            del item["fwmask"]
        result.append(item)
    return result


def _spec_iptables(entry: Dict[str, Any]) -> List[Dict[str, Any]]:
    result = []
    for version, tables in sorted(entry.get("iptables", {}).items()):
        for table, chains in sorted(tables.items()):
            declared = []
            for name, chain in chains.items():
                item: Dict[str, Any] = {"name": name}
                if chain["policy"] not in (None, "ACCEPT"):
                    item["policy"] = chain["policy"]
                if chain["rules"]:
                    item["rules"] = [declared_text(rule) for rule in chain["rules"]]
                if len(item) > 1 or chain["policy"] is None:
                    declared.append(item)
            if declared:
                result.append({"table": table, "ip_version": version, "chains": declared})
    return result


def _end(netns: Optional[str], name: str) -> Tuple[str, str]:
    return ("" if netns is None else netns, name)


def spec_from_info(info: Dict[str, Any], name: str = "captured") -> Dict[str, Any]:
    """A topology spec (format version 1) that re-creates the namespaces in ``info``: their
    sysctls, DNS, links (veth pairs with an end in them, bridges, vlans, macvlans, vxlans, WireGuard
    devices and host devices by MAC), addresses, routes, policy routing rules and iptables rules; in
    the root namespace only the addresses and routes of those links."""
    declared = {ns["name"] for ns in info["namespaces"]}
    scopes: List[Tuple[Optional[str], Dict[str, Any]]] = [(ns["name"], ns) for ns in info["namespaces"]]
    scopes.append((None, info["host"]))
    everywhere = {_end(ns, link["name"]): link for ns, entry in scopes for link in entry["links"]}
    links_out: List[Dict[str, Any]] = []
    seen: Set[Tuple[str, str]] = set()
    devs: Dict[Optional[str], Set[str]] = {ns: set() for ns, _entry in scopes}
    for ns, entry in scopes:
        for link in entry["links"]:
            item = _spec_link(ns, link, declared, everywhere)
            if item is None or _end(ns, link["name"]) in seen:
                continue
            seen.add(_end(ns, link["name"]))
            devs[ns].add(link["name"])
            if item["type"] == "veth":
                seen.add(_end(item.get("peer_netns"), item["peer"]))
                devs.setdefault(item.get("peer_netns"), set()).add(item["peer"])
            links_out.append(item)
    for ns, entry in scopes:  # bridge ports: the links whose master is the bridge
        for link in entry["links"]:
            if link.get("master"):
                for item in links_out:
                    if item["type"] == "bridge" and item.get("netns") == ns and item["name"] == link["master"]:
                        item["ports"].append(link["name"])
    namespaces = []
    for ns in info["namespaces"]:
        item: Dict[str, Any] = {"name": ns["name"]}
        lo = next((l for l in ns["links"] if l["name"] == "lo"), None)
        if lo is not None and lo["state"] != "up":
            item["loopback"] = "down"
        if ns["sysctls"]:
            item["sysctls"] = dict(ns["sysctls"])
        if ns.get("nameservers"):
            item["nameservers"] = list(ns["nameservers"])
        ns_devs = devs[ns["name"]] | {"lo"}
        addresses_ = [a for a in _spec_addresses(ns, ns_devs)
                      if not (a["dev"] == "lo" and a["address"] in ("127.0.0.1/8", "::1/128"))]
        for key, value in (("addresses", addresses_), ("routes", _spec_routes(ns, ns_devs)),
                           ("rules", _spec_rules(ns)), ("iptables", _spec_iptables(ns))):
            if value:
                item[key] = value
        namespaces.append(item)
    host: Dict[str, Any] = {}
    root_devs = devs.get(None, set())
    for key, value in (("addresses", _spec_addresses(info["host"], root_devs)),
                       ("routes", [r for r in _spec_routes(info["host"], root_devs) if r.get("dev") in root_devs])):
        if value:
            host[key] = value
    spec: Dict[str, Any] = {"name": name, "version": 1, "namespaces": namespaces, "links": links_out}
    if host:
        spec["host"] = host
    return spec


def _attributes(link: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """MTU and state where they differ from a new link's."""
    extra: Dict[str, Any] = {prefix + "mtu": link["mtu"]} if link["mtu"] != 1500 else {}
    if link["state"] != "up":
        extra[prefix + "up"] = False
    return extra


def _spec_link(ns: Optional[str], link: Dict[str, Any], declared: Set[str],
               everywhere: Dict[Tuple[str, str], Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The spec item of one link, or None when it is not part of a declared namespace's topology."""
    extra = _attributes(link)
    if link["kind"] == "veth" and link.get("peer"):
        peer = link["peer"]
        if ns not in declared and peer["netns"] not in declared:
            return None
        item = {"type": "veth", "name": link["name"], "netns": ns, "peer": peer["name"], "peer_netns": peer["netns"]}
        item.update(extra)
        peer_link = everywhere.get(_end(peer["netns"], peer["name"]))
        if peer_link is not None:
            item.update(_attributes(peer_link, "peer_"))
        return item
    if ns not in declared:
        return None
    if link["kind"] == "bridge":
        return dict({"type": "bridge", "name": link["name"], "netns": ns, "ports": []}, **extra)
    if link["kind"] in ("vlan", "macvlan") and link.get("parent"):
        item = {"type": link["kind"], "name": link["name"], "netns": ns, "parent": link["parent"]["name"],
                "parent_netns": link["parent"]["netns"]}
        if link["kind"] == "vlan":
            item["id"] = link["vlan_id"]
        else:
            item["mode"] = link["mode"]
        return dict(item, **extra)
    if link["kind"] is None and link["name"] != "lo" and link.get("mac"):
        # a physical NIC (or a link without a kind) in a namespace: a host device, found again by its MAC
        return dict({"type": "device", "name": link["name"], "netns": ns, "match": {"mac": link["mac"]}},
                    **{k: v for k, v in extra.items() if k in ("mtu", "up")})
    vxlan = link.get("vxlan") if link["kind"] == "vxlan" else None
    if vxlan and vxlan.get("underlay_netns") != ELSEWHERE and vxlan.get("underlay_netns") in declared | {None} \
            and not isinstance(vxlan.get("dev", ""), int):
        known = {key: value for key, value in vxlan.items() if value is not None}
        return dict({"type": "vxlan", "name": link["name"], "netns": ns}, **known, **extra)
    return None
