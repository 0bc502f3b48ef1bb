"""The netns_addr module against the real kernel."""

from __future__ import annotations

import json

import pytest

from helpers import converge, run, run_module, snapshot


def pair(prefix: str) -> tuple:
    """Two namespaces joined by a veth made by hand (the module under test only adds addresses)."""
    a, b = prefix + "a", prefix + "b"
    for ns in (a, b):
        run(["ip", "netns", "add", ns])
    run(["ip", "-n", a, "link", "add", "ab", "type", "veth", "peer", "name", "ba", "netns", b])
    return a, b


def addrs(ns: str, dev: str) -> list:
    data = json.loads(run(["ip", "-n", ns, "-j", "addr", "show", "dev", dev]))
    return [(i["local"], i["prefixlen"]) for i in data[0]["addr_info"]]


def test_v4_v6_nodad_up_and_ping(prefix: str) -> None:
    a, b = pair(prefix)
    applied = converge("netns_addr", {"netns": a, "dev": "ab", "addresses": ["10.233.0.1/30", "fd33::1/64"],
                                      "nodad": True, "dev_up": True, "lo_up": True}, prefix)
    assert {"address": "fd33::1/64", "tentative": False, "dadfailed": False} in applied["addresses"]
    converge("netns_addr", {"netns": b, "dev": "ba", "addresses": ["10.233.0.2/30", "fd33::2/64"],
                            "nodad": True, "dev_up": True}, prefix)
    run(["ping", "-c", "1", "-W", "2", "10.233.0.2"], ns=a)
    run(["ping", "-6", "-c", "1", "-W", "2", "fd33::2"], ns=a)
    assert "UP" in run(["ip", "-n", a, "-j", "link", "show", "lo"])


def test_prefix_change_replaces(prefix: str) -> None:
    a = pair(prefix)[0]
    run_module("netns_addr", {"netns": a, "dev": "ab", "addresses": ["10.233.1.1/24"]})
    replaced = run_module("netns_addr", {"netns": a, "dev": "ab", "addresses": ["10.233.1.1/16"]})
    assert [c["action"] for c in replaced["changes"]] == ["replace"]
    assert replaced["diff"] == {"before": {"address 10.233.1.1/16 on ab in netns %s" % a: {"address": "10.233.1.1/24"}},
                                "after": {"address 10.233.1.1/16 on ab in netns %s" % a: {"address": "10.233.1.1/16"}}}
    assert ("10.233.1.1", 16) in addrs(a, "ab")


def test_exclusive_keeps_link_local_unless_asked(prefix: str) -> None:
    a = pair(prefix)[0]
    run(["ip", "-n", a, "link", "set", "ab", "up"])
    run(["ip", "-n", a, "addr", "add", "10.233.2.9/24", "dev", "ab"])
    run(["ip", "-n", a, "addr", "add", "fe80::99/64", "dev", "ab"])
    converge("netns_addr", {"netns": a, "dev": "ab", "addresses": ["10.233.2.1/24"], "exclusive": True}, prefix)
    assert ("10.233.2.9", 24) not in addrs(a, "ab") and ("fe80::99", 64) in addrs(a, "ab")
    converge("netns_addr", {"netns": a, "dev": "ab", "addresses": ["10.233.2.1/24"], "exclusive": True,
                            "purge_link_local": True}, prefix)
    assert addrs(a, "ab") == [("10.233.2.1", 24)]


def test_non_exclusive_leaves_other_addresses(prefix: str) -> None:
    a = pair(prefix)[0]
    run(["ip", "-n", a, "addr", "add", "10.233.3.9/24", "dev", "ab"])
    converge("netns_addr", {"netns": a, "dev": "ab", "addresses": ["10.233.4.1/24"]}, prefix)
    assert ("10.233.3.9", 24) in addrs(a, "ab")


def test_absent_and_root_namespace(prefix: str) -> None:
    run(["ip", "link", "add", prefix + "r0", "type", "veth", "peer", "name", prefix + "r1"])
    converge("netns_addr", {"dev": prefix + "r0", "addresses": ["10.233.5.1/30"]}, prefix)
    converge("netns_addr", {"dev": prefix + "r0", "addresses": ["10.233.5.1/30"], "state": "absent"}, prefix)
    assert addrs_root(prefix + "r0") == []


def addrs_root(dev: str) -> list:
    data = json.loads(run(["ip", "-j", "addr", "show", "dev", dev]))
    return [i["local"] for i in data[0]["addr_info"]]


BAD = [
    ({"dev": "ab", "addresses": ["10.0.0.300/24"]}, "not a valid address"),
    ({"dev": "ab", "addresses": ["10.0.0.1"]}, "CIDR"),
    ({"dev": "ab", "addresses": ["10.0.0.1/33"]}, "not a valid address"),
    ({"dev": "ab", "addresses": ["10.0.0.1/24", "10.0.0.1/16"]}, "listed twice"),
    ({"dev": "nosuch", "addresses": ["10.0.0.1/24"]}, "device does not exist"),
    ({"dev": "x" * 16, "addresses": ["10.0.0.1/24"]}, "at most 15"),
    ({"dev": "ab", "addresses": ["10.0.0.1/24"], "netns": "MISSING"}, "does not exist"),
    ({"dev": "ab", "addresses": ["10.0.0.1/24"], "netns": "a/b"}, "not allowed"),
    # the kernel would refuse (or drop) the second after the first was added
    ({"dev": "ab", "addresses": ["10.0.0.1/24", "ff02::1/64"]}, "multicast"),
    ({"dev": "ab", "addresses": ["10.0.0.1/24", "224.0.0.9/24"]}, "multicast"),
    ({"dev": "ab", "addresses": ["10.0.0.1/24", "::1/128"]}, "belongs on lo"),
    ({"dev": "ab", "addresses": ["10.0.0.1/24", "127.0.0.5/8"]}, "belongs on lo"),
    ({"dev": "ab", "addresses": ["10.0.0.1/24", "0.0.0.0/8"]}, "not a host address"),
    ({"dev": "ab", "addresses": ["10.0.0.1/24", "::/64"]}, "not a host address"),
    ({"dev": "ab", "addresses": ["10.0.0.1/24", "10.0.1.255/24"]}, "broadcast"),
]


def test_ipv6_on_a_link_below_1280_fails_before_change(prefix: str) -> None:
    a = pair(prefix)[0]
    run(["ip", "-n", a, "link", "set", "ab", "mtu", "1200"])
    before = snapshot(prefix)
    result = run_module("netns_addr", {"netns": a, "dev": "ab", "addresses": ["10.0.0.1/24", "fd33:9::1/64"]})
    assert result["failed"] and "no IPv6 below 1280" in result["msg"], result
    assert snapshot(prefix) == before


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input(prefix: str, args: dict, message: str) -> None:
    a = pair(prefix)[0]
    args = dict(args)
    args["netns"] = {None: a, "MISSING": prefix + "zz"}.get(args.get("netns"), args.get("netns"))
    before = snapshot(prefix)
    result = run_module("netns_addr", args)
    assert result["failed"] and message in result["msg"], result
    assert snapshot(prefix) == before
