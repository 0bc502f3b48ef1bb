"""The benchmark workload W(N), as one topology spec for our tools and as plain data for the others.

W(N): N namespaces, each with a veth pair to the root namespace, an IPv4 /30 on each end, both
ends and lo up, a default route inside, one sysctl and one iptables rule. Addresses come from
10.240.0.0/16 (up to 16384 namespaces); every name starts with a per-run prefix.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, Iterator, NamedTuple

BASE = ipaddress.ip_network("10.240.0.0/16")
RULE = "-p tcp --dport 22 -j ACCEPT"
SYSCTL = ("net.ipv4.ip_forward", "1")


class Item(NamedTuple):
    netns: str
    root_end: str
    ns_end: str
    root_address: str  # with prefix length
    ns_address: str
    gateway: str


def items(prefix: str, count: int) -> Iterator[Item]:
    for index in range(count):
        subnet = ipaddress.ip_network((int(BASE.network_address) + 4 * index, 30))
        first, second = subnet.network_address + 1, subnet.network_address + 2
        yield Item("%s%d" % (prefix, index), "%sr%d" % (prefix, index), "eth0",
                   "%s/30" % first, "%s/30" % second, str(first))


def topology(prefix: str, count: int) -> Dict[str, Any]:
    namespaces, links, host = [], [], []
    for item in items(prefix, count):
        namespaces.append({
            "name": item.netns,
            "sysctls": {SYSCTL[0]: int(SYSCTL[1])},
            "addresses": [{"dev": item.ns_end, "address": item.ns_address}],
            "routes": [{"dst": "default", "via": item.gateway}],
            "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": [RULE]}]}],
        })
        links.append({"type": "veth", "name": item.root_end, "peer": item.ns_end, "peer_netns": item.netns})
        host.append({"dev": item.root_end, "address": item.root_address})
    return {"name": prefix + "bench", "namespaces": namespaces, "links": links, "host": {"addresses": host}}
