"""What the topology format accepts, the kernel accepts: each case here is one the kernel refuses
(or silently drops) part-way through an apply; validation refuses it first, naming its path."""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.address import address_spec
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.namespace import namespace_spec, split_sysctls
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.route import route_spec
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.validation import per_link_sysctl, with_link
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.veth import veth_spec

from ansible_collections.linuxnet.netns.tests.unit.plugins.module_utils._engine.test_topology_spec import REFERENCE

V6 = {"dev": "veth1", "address": "fd00:50::2/64", "nodad": True}
ROUTE = "namespaces.0.routes.0"
ADDRESS = "namespaces.0.addresses.0.address"

REFUSED = [
    # (dotted path, value, the field the error names (None: the address at ADDRESS), words of the
    # message, other changes to REFERENCE)
    ("namespaces.0.sysctls", {"net.ipv4.ip_forward": "1\n0"}, "namespaces[0].sysctls.net.ipv4.ip_forward",
     "one line", None),
    ("namespaces.0.sysctls", {"net.ipv4.ip_forward": "1\x00"}, "namespaces[0].sysctls.net.ipv4.ip_forward",
     "control character", None),
    ("links.0.mac", "00:00:00:00:00:00", "links[0].mac", "all-zero", None),
    ("links.0.peer_mac", "ff:ff:ff:ff:ff:ff", "links[0].peer_mac", "broadcast", None),
    ("links.0.name", "lo", "links[0].name", "loopback", None),
    ("links.0.peer", "lo", "links[0].peer", "loopback", None),
    ("links.0.name", "all", "links[0].name", "settings of all links", None),
    ("links.0.peer", "default", "links[0].peer", "settings of all links", None),
    ("links.1", {"type": "bridge", "name": "lo", "netns": "msb"}, "links[1].name", "loopback", None),
    ("links.1", {"type": "macvlan", "name": "mv0", "netns": "msb", "parent": "lo"}, "links[1].parent", "Ethernet",
     None),
    # addresses no link can hold
    (ADDRESS, "224.0.0.5/24", None, "multicast", None),
    (ADDRESS, "ff02::5/64", None, "multicast", None),
    (ADDRESS, "127.0.0.2/8", None, "belongs on lo", None),
    (ADDRESS, "::1/128", None, "belongs on lo", None),
    (ADDRESS, "0.0.0.0/8", None, "unspecified", None),
    (ADDRESS, "0.1.2.3/8", None, "0.0.0.0/8", None),
    (ADDRESS, "::/64", None, "unspecified", None),
    (ADDRESS, "192.168.50.255/24", None, "broadcast", None),
    (ADDRESS, "255.255.255.255/32", None, "broadcast", None),
    # IPv6 on a link whose MTU is below 1280
    ("namespaces.0.addresses.1", V6, "namespaces[0].addresses[1].address", "links[0].peer_mtu",
     {"links.0.peer_mtu": 1200}),
    # gateways
    (ROUTE, {"dst": "fd09::/64", "via": "fe80::1"}, "namespaces[0].routes[0].dev", "link-local", None),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "192.168.50.3", "onlink": True}, "namespaces[0].routes[0].dev", "onlink",
     None),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "224.0.0.1"}, "namespaces[0].routes[0].via", "multicast", None),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "0.0.0.0"}, "namespaces[0].routes[0].via", "unspecified", None),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "127.0.0.1", "onlink": True, "dev": "veth1"}, "namespaces[0].routes[0].via",
     "loopback", None),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "255.255.255.255", "onlink": True, "dev": "veth1"},
     "namespaces[0].routes[0].via", "broadcast", None),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "192.168.50.255"}, "namespaces[0].routes[0].via", "broadcast", None),
    (ROUTE, {"dst": "fd09::/64", "via": "fd00:50::2"}, "namespaces[0].routes[0].via", "itself",
     {"namespaces.0.addresses.1": V6}),
    # sources
    (ROUTE, {"dst": "10.0.0.0/8", "via": "192.168.50.3", "src": "192.168.50.99"}, "namespaces[0].routes[0].src",
     "no address declared", None),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "192.168.50.3", "src": "fd00:50::2"}, "namespaces[0].routes[0].src",
     "IPv6 but the destination", {"namespaces.0.addresses.1": V6}),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "192.168.50.3", "src": "127.0.0.1"}, "namespaces[0].routes[0].src",
     "no address declared", {"namespaces.0.loopback": "down"}),
    (ROUTE, {"dst": "fd09::/64", "via": "fd00:50::1", "src": "fd00:50::2"}, "namespaces[0].routes[0].src", "nodad",
     {"namespaces.0.addresses.1": dict(V6, nodad=False)}),
    (ROUTE, {"dst": "fd09::/64", "via": "fd00:50::1", "src": "fe80::2"}, "namespaces[0].routes[0].src",
     "only for routes on veth1", {"namespaces.0.addresses.1": V6, "namespaces.0.addresses.2": dict(V6, address="fe80::2/64")}),
    # routes on links declared down
    (ROUTE, {"dst": "10.0.0.0/8", "dev": "veth1"}, "namespaces[0].routes[0].dev", "declared down",
     {"links.0.peer_up": False}),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "192.168.50.3"}, "namespaces[0].routes[0].via", "declared down",
     {"links.0.peer_up": False}),
    (ROUTE, {"dst": "fd09::/64", "dev": "veth1"}, "namespaces[0].routes[0].dev", "IPv6 needs at least",
     {"links.0.peer_mtu": 1279}),
]


def _spec(path: str, value: Any, extra: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """REFERENCE with ``value`` at ``path`` and the ``extra`` changes; an index one past a list's end appends."""
    spec = copy.deepcopy(REFERENCE)
    for where, new in [(path, value)] + list((extra or {}).items()):
        *parents, last = where.split(".")
        node: Any = spec
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list) and int(last) == len(node):
            node.append(copy.deepcopy(new))
        else:
            node[int(last) if isinstance(node, list) else last] = copy.deepcopy(new)
    return spec


@pytest.mark.parametrize("path,value,where,words,extra", REFUSED, ids=["%s=%r" % (c[0], c[1]) for c in REFUSED])
def test_refused_before_any_change(path: str, value: Any, where: Optional[str], words: str,
                                   extra: Optional[Dict[str, Any]]) -> None:
    with pytest.raises(NetnsError) as caught:
        parse_topology(_spec(path, value, extra))
    assert caught.value.obj == (where or "namespaces[0].addresses[0].address")
    assert words in str(caught.value)


ACCEPTED = [
    # what the kernel does take, close to the refused cases
    ("namespaces.0.addresses.1", {"dev": "lo", "address": "127.0.0.2/8"}, None),
    ("namespaces.0.addresses.1", {"dev": "veth1", "address": "192.168.51.0/24"}, None),  # a network address works
    ("namespaces.0.addresses.1", {"dev": "veth1", "address": "192.168.52.1/31"}, None),  # /31 has no broadcast
    ("namespaces.0.addresses.1", V6, {"links.0.peer_mtu": 1280}),
    (ROUTE, {"dst": "fd09::/64", "via": "fe80::1", "dev": "veth1"}, None),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "192.168.50.3", "src": "192.168.50.2"}, None),
    (ROUTE, {"dst": "10.0.0.0/8", "via": "192.168.50.3", "src": "127.0.0.1"}, None),  # lo is up
    (ROUTE, {"dst": "10.0.0.0/8", "via": "192.168.50.3", "src": "10.9.0.77"},
     {"namespaces.0.addresses.1": {"dev": "lo", "address": "10.9.0.1/24"}}),  # on lo the whole prefix is local
    (ROUTE, {"dst": "fd09::/64", "via": "fd00:50::1", "src": "fd00:50::2"}, {"namespaces.0.addresses.1": V6}),
    (ROUTE, {"dst": "fd09::/64", "via": "fe80::1", "dev": "veth1", "src": "fe80::2"},
     {"namespaces.0.addresses.1": dict(V6, address="fe80::2/64")}),
    (ROUTE, {"dst": "10.0.0.0/8", "dev": "veth1"}, {"links.0.up": False}),  # the other end is down
]


@pytest.mark.parametrize("path,value,extra", ACCEPTED, ids=["%s=%r" % (c[0], c[1]) for c in ACCEPTED])
def test_accepted(path: str, value: Any, extra: Optional[Dict[str, Any]]) -> None:
    parse_topology(_spec(path, value, extra))


def test_vlan_on_a_bridge_takes_the_mtu_of_its_smallest_port() -> None:
    spec = copy.deepcopy(REFERENCE)
    spec["links"] += [{"type": "veth", "name": "p0", "netns": "msb", "peer": "p1", "mtu": 1200},
                      {"type": "bridge", "name": "br0", "netns": "msb", "ports": ["p0"]},
                      {"type": "vlan", "name": "br0.5", "netns": "msb", "parent": "br0", "parent_netns": "msb", "id": 5}]
    spec["namespaces"][0]["addresses"].append({"dev": "br0.5", "address": "fd00:51::1/64"})
    with pytest.raises(NetnsError) as caught:
        parse_topology(spec)
    assert caught.value.obj == "namespaces[0].addresses[1].address"
    assert "links[1].mtu" in str(caught.value)
    spec["links"][3]["mtu"] = 1500  # then the vlan's own
    parse_topology(spec)


@pytest.mark.parametrize("key,link", [
    ("net.ipv4.conf.veth1.forwarding", "veth1"),
    ("net.ipv6.conf.veth1.disable_ipv6", "veth1"),
    ("net.ipv4.neigh.veth1.ucast_solicit", "veth1"),
    ("net/ipv4/conf/eth0.10/rp_filter", "eth0.10"),
    ("net.ipv4.conf.all.forwarding", None),
    ("net.ipv6.conf.default.forwarding", None),
    ("net.ipv4.ip_forward", None),
    ("net.ipv4.conf.eth0.10.rp_filter", None),  # a name with dots needs the '/' form
])
def test_per_link_sysctl(key: str, link: Optional[str]) -> None:
    assert per_link_sysctl(key) == link
    if link is not None:
        assert per_link_sysctl(with_link(key, "lo")) == "lo"


def test_per_interface_sysctls_of_declared_links_are_planned_apart() -> None:
    spec = namespace_spec("msb", sysctls={"net.ipv4.ip_forward": 1, "net.ipv4.conf.veth1.forwarding": 1,
                                          "net.ipv4.conf.lo.rp_filter": 2, "net/ipv6/conf/v.1/forwarding": "1"},
                          path="namespaces[0]")
    now, later = split_sysctls(spec, frozenset({"veth1", "v.1"}))
    assert now.sysctls == (("net.ipv4.conf.lo.rp_filter", "2"), ("net.ipv4.ip_forward", "1"))
    assert later.sysctls == (("net.ipv4.conf.veth1.forwarding", "1"), ("net/ipv6/conf/v.1/forwarding", "1"))
    assert later.nameservers is None and later.lo_up is None
    assert later.field("sysctls.net.ipv4.conf.veth1.forwarding") == "namespaces[0].sysctls.net.ipv4.conf.veth1.forwarding"


def test_what_is_removed_need_not_be_what_the_kernel_would_add() -> None:
    """Purge removes what an earlier spec declared, which may hold what is refused now."""
    with pytest.raises(NetnsError, match="multicast"):
        address_spec("msb", "veth1", ["224.0.0.5/24"])
    address_spec("msb", "veth1", ["224.0.0.5/24"], state="absent")
    route = {"dst": "10.0.0.0/8", "via": "224.0.0.1"}
    with pytest.raises(NetnsError, match="multicast"):
        route_spec("msb", [route])
    route_spec("msb", [route], state="absent")
    with pytest.raises(NetnsError, match="loopback"):
        veth_spec("lo", "x1", netns="msb")
    veth_spec("lo", "x1", netns="msb", state="absent")
