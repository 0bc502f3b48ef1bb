"""The benchmark workload W(N), as one topology spec for our tools and as plain data for the others.

W(N): N namespaces, each with a veth pair to the root namespace, an IPv4 /30 on each end, both
ends and lo up, a default route inside, one sysctl and one iptables rule. Addresses come from
10.240.0.0/16 (up to 16384 namespaces); every name starts with a per-run prefix.

W_nft(N) is W(N) with that rule as an nftables table of its own (NFT_TABLE) instead of iptables;
W_0(N) is W(N) without the firewall (what ifstate, which has no firewall, is compared on).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, Iterator, NamedTuple

BASE = ipaddress.ip_network("10.240.0.0/16")
RULE = "-p tcp --dport 22 -j ACCEPT"
SYSCTL = ("net.ipv4.ip_forward", "1")
# The same rule for nftables, in a table of the bench's own (not `ip filter`, iptables' table).
NFT_TABLE = {"family": "inet", "table": "bench",
             "definition": "chain input {\n  type filter hook input priority 0; policy accept;\n  tcp dport 22 accept\n}\n"}
FIREWALLS = ("iptables", "nftables", "none")


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


def nft_command() -> str:
    """NFT_TABLE as one nft command (what the kernel floor hands libnftables)."""
    return "table %(family)s %(table)s {\n%(definition)s}\n" % NFT_TABLE


def topology(prefix: str, count: int, firewall: str = "iptables") -> Dict[str, Any]:
    """W(N) as a topology spec; ``firewall`` (one of FIREWALLS) picks W(N), W_nft(N) or W_0(N)."""
    namespaces, links, host = [], [], []
    for item in items(prefix, count):
        namespace: Dict[str, Any] = {
            "name": item.netns,
            "sysctls": {SYSCTL[0]: int(SYSCTL[1])},
            "addresses": [{"dev": item.ns_end, "address": item.ns_address}],
            "routes": [{"dst": "default", "via": item.gateway}],
        }
        if firewall == "iptables":
            namespace["iptables"] = [{"table": "filter", "chains": [{"name": "INPUT", "rules": [RULE]}]}]
        elif firewall == "nftables":
            namespace["nftables"] = [dict(NFT_TABLE)]
        namespaces.append(namespace)
        links.append({"type": "veth", "name": item.root_end, "peer": item.ns_end, "peer_netns": item.netns})
        host.append({"dev": item.root_end, "address": item.root_address})
    return {"name": prefix + "bench", "namespaces": namespaces, "links": links, "host": {"addresses": host}}
