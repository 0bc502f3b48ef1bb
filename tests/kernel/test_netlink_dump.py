"""The engine's own rtnetlink dump decoder (_netlink/decode.py, dumps sent by _netlink/socket.py) against
pyroute2's, on live dumps.

The comparison runs in the interpreter modules run with (pyroute2 0.9, and 0.7.2 in make test's
second pass), over a namespace holding every kind of attribute the engine reads: veth ends in two
namespaces (peer ifindex and nsid), a bridge with a port (master), MAC and MTU, vxlans (their
IFLA_INFO_DATA, one moved out of its link namespace), IPv4 and IPv6 addresses (flags such as
nodad), routes in the main and another table, with metric, source, gateway and onlink; policy
routing rules of both families with every selector the engine reads and some it only notes; and the ids namespaces have for each other (RTM_GETNSID).
"""

from __future__ import annotations

import json
import os
import subprocess

from helpers import COLLECTIONS, MODULE_PYTHON, run

COMPARE = r"""
import json, os, socket, sys
from pyroute2 import IPRoute
from ansible_collections.linuxnet.netns.plugins.module_utils._engine._netlink import socket as netlink_socket
from ansible_collections.linuxnet.netns.plugins.module_utils._engine._netlink.decode import INFO_DATA, KINDS
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.system import netns_mounts, thread_netns

WANTED = {kind: [name for name, _decoder in spec.attributes.values()] for kind, spec in KINDS.items()}
# a rule's selectors the engine only notes the presence of (kept as bytes): compared by presence
PRESENT = {name for name, decoder in KINDS["rules"].attributes.values() if decoder.__name__ == "_raw"}

def link_info(info):
    # the kind, and for a kind whose data the engine reads (a vxlan), that data
    kind = info.get_attr("IFLA_INFO_KIND")
    data = info.get_attr("IFLA_INFO_DATA")
    names = [name for name, _decoder in INFO_DATA.get(kind, {}).values()]
    if not names or data is None:
        return kind
    return [kind, {name: data.get_attr(name) for name in names if data.get_attr(name) is not None}]

def theirs(msg, kind):
    fields = {f: msg[f] for f in KINDS[kind].fields}
    attrs = {name: msg.get_attr(name) for name in WANTED[kind] if msg.get_attr(name) is not None}
    if "IFLA_LINKINFO" in attrs:
        attrs["IFLA_LINKINFO"] = link_info(attrs["IFLA_LINKINFO"])
    return fields, {name: "present" if name in PRESENT else value for name, value in attrs.items()}

def ours(msg):
    attrs = dict(msg.attrs)
    if "IFLA_LINKINFO" in attrs:
        attrs["IFLA_LINKINFO"] = link_info(attrs["IFLA_LINKINFO"])
    return msg.fields, {name: "present" if name in PRESENT else value for name, value in attrs.items()}

result = {}
for ns in json.loads(sys.argv[1]):
    with thread_netns.entered(None if ns is None else netns_mounts.open_namespace(ns)):
        ipr = IPRoute()
        sock = netlink_socket.open_socket()
    reads = {"links": (ipr.get_links(), "links", 0),
             "addresses": (ipr.get_addr(), "addresses", 0),
             "routes4": (ipr.get_routes(family=socket.AF_INET), "routes", socket.AF_INET),
             "routes6": (ipr.get_routes(family=socket.AF_INET6), "routes", socket.AF_INET6),
             "rules": (ipr.get_rules(family=socket.AF_UNSPEC), "rules", 0)}
    for label, (messages, kind, family) in reads.items():
        result["%s %s" % (ns, label)] = {
            "pyroute2": [theirs(m, kind) for m in messages],
            "ours": [ours(m) for m in netlink_socket.dump(sock, kind, family)]}
    for target in json.loads(sys.argv[1])[1:]:
        fd = netns_mounts.open_namespace(target)
        reply = ipr.get_netnsid(fd=fd)
        value = reply.get("nsid") if isinstance(reply, dict) else None
        result["%s nsid of %s" % (ns, target)] = {
            "pyroute2": None if value is None or value < 0 or value >= 0x80000000 else value,
            "ours": netlink_socket.get_nsid(sock, fd)}
        os.close(fd)
    ipr.close()
    sock.close()
print(json.dumps(result, sort_keys=True))
"""


def test_decoder_agrees_with_pyroute2(prefix: str) -> None:
    a, b = prefix + "a", prefix + "b"
    run(["ip", "netns", "add", a])
    run(["ip", "netns", "add", b])
    script = [
        ["ip", "link", "add", prefix + "v0", "mtu", "1400", "address", "02:00:00:aa:bb:01", "type", "veth",
         "peer", "name", "eth0", "netns", a],
        ["ip", "link", "set", prefix + "v0", "netns", b],
        ["ip", "-n", a, "link", "add", "br0", "type", "bridge"],
        ["ip", "-n", a, "link", "add", "p0", "type", "veth", "peer", "name", "p1"],
        ["ip", "-n", a, "link", "set", "p0", "master", "br0"],
        ["ip", "-n", b, "link", "set", prefix + "v0", "up"],
        ["ip", "-n", a, "link", "set", "eth0", "up"],
        ["ip", "-n", a, "link", "set", "lo", "up"],
        ["ip", "-n", a, "link", "set", "br0", "up"],
        ["ip", "-n", a, "addr", "add", "10.77.0.1/24", "dev", "eth0"],
        ["ip", "-n", a, "addr", "add", "fd77::1/64", "dev", "eth0", "nodad"],
        ["ip", "-n", a, "addr", "add", "10.78.0.1/24", "dev", "br0"],
        ["ip", "-n", a, "route", "add", "10.79.0.0/16", "via", "10.77.0.2", "metric", "50", "src", "10.77.0.1"],
        ["ip", "-n", a, "route", "add", "default", "via", "10.77.0.2", "table", "4242"],
        ["ip", "-n", a, "route", "add", "10.80.0.0/16", "via", "10.81.0.1", "dev", "eth0", "onlink"],
        ["ip", "-n", a, "-6", "route", "add", "fd78::/64", "via", "fd77::2", "metric", "7"],
        ["ip", "-n", a, "rule", "add", "priority", "1000", "from", "10.77.0.0/24", "table", "4242"],
        ["ip", "-n", a, "rule", "add", "priority", "1001", "fwmark", "0x10/0xf0", "iif", "eth0", "oif", "br0", "table", "7"],
        ["ip", "-n", a, "-6", "rule", "add", "priority", "1002", "to", "fd78::/64", "table", "8"],
        ["ip", "-n", a, "rule", "add", "priority", "1003", "ipproto", "tcp", "dport", "22", "table", "9"],
        ["ip", "-n", a, "rule", "add", "priority", "1004", "not", "from", "10.0.0.0/8", "suppress_prefixlength", "0",
         "table", "main"],
        # vxlans: one moved into b (its link namespace stays a), one on an IPv6 multicast group
        ["ip", "-n", a, "link", "add", "vxd", "type", "vxlan", "id", "4242", "remote", "10.77.0.2", "local", "10.77.0.1",
         "dev", "eth0", "dstport", "4789"],
        ["ip", "-n", a, "link", "set", "vxd", "netns", b],
        ["ip", "-n", a, "link", "add", "vx6", "type", "vxlan", "id", "7", "group", "ff05::7", "dev", "eth0",
         "dstport", "4790"],
    ]
    for argv in script:
        run(argv)
    proc = subprocess.run([MODULE_PYTHON, "-c", COMPARE, json.dumps([None, a, b])], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=COLLECTIONS), check=False)
    assert proc.returncode == 0, proc.stderr
    compared = json.loads(proc.stdout)
    for label, sides in compared.items():
        assert sides["ours"] == sides["pyroute2"], label
    # the namespace really had what the comparison is meant to cover
    links_a = {attrs["IFLA_IFNAME"]: (fields, attrs) for fields, attrs in compared["%s links" % a]["ours"]}
    assert links_a["eth0"][1]["IFLA_LINKINFO"] == "veth" and "IFLA_LINK_NETNSID" in links_a["eth0"][1]
    assert links_a["p0"][1]["IFLA_MASTER"] == links_a["br0"][0]["index"]
    assert links_a["vx6"][1]["IFLA_LINKINFO"] == ["vxlan", {
        "IFLA_VXLAN_ID": 7, "IFLA_VXLAN_GROUP6": "ff05::7", "IFLA_VXLAN_LINK": links_a["eth0"][0]["index"],
        "IFLA_VXLAN_PORT": 4790}]
    links_b = {attrs["IFLA_IFNAME"]: attrs for _fields, attrs in compared["%s links" % b]["ours"]}
    assert links_b["vxd"]["IFLA_LINKINFO"][1]["IFLA_VXLAN_LOCAL"] == "10.77.0.1" and "IFLA_LINK_NETNSID" in links_b["vxd"]
    tables = {attrs.get("RTA_TABLE") for _fields, attrs in compared["%s routes4" % a]["ours"]}
    assert 4242 in tables and 254 in tables
    assert any(attrs.get("IFA_ADDRESS") == "fd77::1" for _f, attrs in compared["%s addresses" % a]["ours"])
    rules = {attrs.get("FRA_PRIORITY"): attrs for _fields, attrs in compared["%s rules" % a]["ours"]}
    assert rules[1000]["FRA_TABLE"] == 4242 and rules[1001]["FRA_FWMASK"] == 0xF0 and rules[1002]["FRA_DST"] == "fd78::"
    assert rules[1003]["FRA_IP_PROTO"] == "present" and rules[1004]["FRA_SUPPRESS_PREFIXLEN"] == 0
    # the veth between a and b gave each an id for the other
    assert compared["%s nsid of %s" % (a, b)]["ours"] is not None
    assert compared["%s nsid of %s" % (b, a)]["ours"] is not None
