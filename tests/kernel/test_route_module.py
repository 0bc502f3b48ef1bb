"""The netns_route module against the real kernel."""

from __future__ import annotations

import json
import zlib

import pytest

from helpers import converge, run, run_module, snapshot, wait_settled


def router_pair(prefix: str) -> tuple:
    """a <-veth-> b with 10.234.0.0/30 and fd34::/64, everything up (made by hand)."""
    a, b = prefix + "a", prefix + "b"
    for ns in (a, b):
        run(["ip", "netns", "add", ns])
    run(["ip", "-n", a, "link", "add", "ab", "type", "veth", "peer", "name", "ba", "netns", b])
    for ns, dev, v4, v6 in ((a, "ab", "10.234.0.1/30", "fd34::1/64"), (b, "ba", "10.234.0.2/30", "fd34::2/64")):
        run(["ip", "-n", ns, "addr", "add", v4, "dev", dev])
        run(["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"])
        run(["ip", "-n", ns, "link", "set", dev, "up"])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    wait_settled([a, b])
    return a, b


def routes(ns: str, *options: str, table: str = "") -> list:
    """``ip -j [OPTIONS] route show [table TABLE]`` in ``ns`` (its JSON)."""
    return json.loads(run(["ip", "-n", ns, "-j"] + list(options) + ["route", "show"] + (["table", table] if table else [])))


def test_default_routes_v4_v6_and_ping_through(prefix: str) -> None:
    a, b = router_pair(prefix)
    run(["ip", "-n", a, "addr", "add", "10.234.9.1/32", "dev", "lo"])
    converge("netns_route", {"netns": b, "routes": [{"dst": "default", "via": "10.234.0.1"},
                                                    {"dst": "default", "via": "fd34::1"}]}, prefix)
    assert [r["gateway"] for r in routes(b) if r["dst"] == "default"] == ["10.234.0.1"]
    assert [r["gateway"] for r in routes(b, "-6") if r["dst"] == "default"] == ["fd34::1"]
    run(["ping", "-c", "1", "-W", "2", "10.234.9.1"], ns=b)  # only reachable through the default route


def test_changing_via_replaces_in_place(prefix: str) -> None:
    a, b = router_pair(prefix)
    run_module("netns_route", {"netns": b, "routes": [{"dst": "10.99.0.0/16", "via": "10.234.0.1"}]})
    replaced = run_module("netns_route", {"netns": b, "routes": [{"dst": "10.99.0.0/16", "via": "10.234.0.1",
                                                                 "src": "10.234.0.2", "scope": "global"}]})
    assert [c["action"] for c in replaced["changes"]] == ["update"]
    assert len([r for r in routes(b) if r["dst"] == "10.99.0.0/16"]) == 1
    assert [r.get("prefsrc") for r in routes(b) if r["dst"] == "10.99.0.0/16"] == ["10.234.0.2"]


def test_metric_and_table_are_identity(prefix: str) -> None:
    b = router_pair(prefix)[1]
    declared = [{"dst": "10.98.0.0/16", "via": "10.234.0.1", "metric": 10},
                {"dst": "10.98.0.0/16", "via": "10.234.0.1", "metric": 20},
                {"dst": "10.98.0.0/16", "dev": "ba", "table": 100, "scope": "link"}]
    converge("netns_route", {"netns": b, "routes": declared}, prefix)
    assert len([r for r in routes(b) if r["dst"] == "10.98.0.0/16"]) == 2
    assert len(routes(b, table="100")) == 1
    converge("netns_route", {"netns": b, "routes": declared[1:], "state": "absent"}, prefix)
    assert [r.get("metric", 0) for r in routes(b) if r["dst"] == "10.98.0.0/16"] == [10]


def test_onlink_gateway_off_subnet(prefix: str) -> None:
    b = router_pair(prefix)[1]
    args = {"netns": b, "routes": [{"dst": "10.97.0.0/16", "via": "10.200.0.1", "dev": "ba", "onlink": True}]}
    converge("netns_route", args, prefix)
    assert "onlink" in [r for r in routes(b) if r["dst"] == "10.97.0.0/16"][0]["flags"]


def test_exclusive_per_table_spares_kernel_routes(prefix: str) -> None:
    b = router_pair(prefix)[1]
    run(["ip", "-n", b, "route", "add", "10.96.0.0/16", "via", "10.234.0.1"])
    run(["ip", "-n", b, "route", "add", "10.95.0.0/16", "via", "10.234.0.1", "table", "7"])
    args = {"netns": b, "exclusive": True, "routes": [{"dst": "default", "via": "10.234.0.1"}]}
    converge("netns_route", args, prefix)
    v4 = routes(b)
    assert {r["dst"] for r in v4} == {"default", "10.234.0.0/30"}  # connected route kept
    assert json.loads(run(["ip", "-n", b, "-j", "route", "show", "table", "7"]))  # other table untouched
    assert routes(b, "-6")  # other family untouched


def test_root_namespace_route(prefix: str) -> None:
    # The root namespace is shared with everything else on the host: subnet and table are drawn
    # from the run's prefix and the route names its device, so an address someone else holds
    # (say a crashed run's leftover) can neither take the route nor pre-empt it.
    slot = zlib.crc32(prefix.encode()) % 250
    dev = prefix + "r0"
    run(["ip", "link", "add", dev, "type", "veth", "peer", "name", prefix + "r1"])
    run(["ip", "link", "set", dev, "up"])
    run(["ip", "addr", "add", "10.233.%d.1/30" % slot, "dev", dev])
    route = {"dst": "10.232.%d.0/24" % slot, "via": "10.233.%d.2" % slot, "dev": dev, "table": 40000 + slot}
    converge("netns_route", {"routes": [route]}, prefix)
    assert json.loads(run(["ip", "-j", "route", "show", "table", str(route["table"]), "dev", dev]))


OK = {"dst": "10.97.0.0/16", "via": "10.234.0.1"}
BAD = [
    ({"routes": [{"dst": "10.0.0.0/33", "via": "10.234.0.1"}]}, "not a valid destination"),
    ({"routes": [{"dst": "10.0.0.1/8", "via": "10.234.0.1"}]}, "host bits set"),
    ({"routes": [{"dst": "10.0.0.0/8", "via": "fd34::1"}]}, "IPv6 but the destination"),
    ({"routes": [{"dst": "10.0.0.0/8"}]}, "needs a gateway"),
    ({"routes": [{"dst": "10.0.0.0/8", "via": "10.250.0.1"}]}, "on no subnet"),
    ({"routes": [{"dst": "10.0.0.0/8", "dev": "nosuch"}]}, "device nosuch does not exist"),
    ({"routes": [{"dst": "10.0.0.0/8", "via": "10.234.0.1", "table": "local"}]}, "table must be"),
    ({"routes": [{"dst": "10.0.0.0/8", "via": "10.234.0.1", "scope": "galaxy"}]}, "scope must be"),
    ({"routes": [{"dst": "10.0.0.0/8", "via": "not-an-ip"}]}, "not a valid IP"),
    ({"routes": [{"dst": "10.0.0.0/8", "via": "10.234.0.1"}, {"dst": "10.0.0.0/8", "via": "10.234.0.1"}]}, "duplicate"),
    ({"routes": [{"dst": "10.0.0.0/8", "via": "10.234.0.1", "metric": -1}]}, "metric must be"),
    ({"routes": [{"dst": "10.0.0.0/8", "via": "10.234.0.1", "src": "fd34::2"}]}, "family"),
    ({"routes": [{"dst": "default", "via": "10.234.0.1"}], "netns": "MISSING"}, "does not exist"),
    # the kernel would refuse the second after the first was added
    ({"routes": [OK, {"dst": "fd35::/64", "via": "fe80::1"}]}, "link-local"),
    ({"routes": [OK, {"dst": "10.96.0.0/16", "via": "10.234.0.1", "onlink": True}]}, "onlink"),
    ({"routes": [OK, {"dst": "10.96.0.0/16", "via": "10.234.0.1", "src": "10.234.0.9"}]}, "no address of"),
    ({"routes": [OK, {"dst": "10.96.0.0/16", "via": "224.0.0.1", "dev": "ba", "onlink": True}]}, "multicast"),
    ({"routes": [OK, {"dst": "10.96.0.0/16", "via": "0.0.0.0"}]}, "unspecified"),
    ({"routes": [OK, {"dst": "10.96.0.0/16", "via": "10.234.0.3"}]}, "broadcast address of 10.234.0.0/30"),
    ({"routes": [OK, {"dst": "fd35::/64", "via": "fd34::2"}]}, "itself"),
    ({"routes": [OK, {"dst": "fd35::/64", "via": "fd34::1", "src": "::1"}]}, "only for routes on lo"),
]


def test_routes_on_links_the_kernel_refuses_fail_before_change(prefix: str) -> None:
    """A link that is down, an IPv6 source still tentative (no carrier: duplicate address detection
    waits) and IPv6 on a link below 1280: refused before the valid route ahead of them is added."""
    b = router_pair(prefix)[1]
    for dev, peer in (("bx", "xb"), ("by", "yb"), ("bz", "zb")):
        run(["ip", "-n", b, "link", "add", dev, "type", "veth", "peer", "name", peer])
    run(["ip", "-n", b, "addr", "add", "10.235.0.1/24", "dev", "bx"])
    run(["ip", "-n", b, "link", "set", "by", "up"])
    run(["ip", "-n", b, "addr", "add", "fd36::1/64", "dev", "by"])
    run(["ip", "-n", b, "link", "set", "bz", "mtu", "1200", "up"])
    wait_settled([b])
    before = snapshot(prefix)
    for route, message in (({"dst": "10.96.0.0/16", "dev": "bx"}, "bx is down"),
                           ({"dst": "10.96.0.0/16", "via": "10.235.0.2"}, "bx, which is down"),
                           ({"dst": "fd37::/64", "dev": "by", "src": "fd36::1"}, "tentative"),
                           ({"dst": "fd38::/64", "dev": "bz"}, "no IPv6 below 1280")):
        result = run_module("netns_route", {"netns": b, "routes": [OK, route]})
        assert result["failed"] and message in result["msg"], (route, result)
        assert snapshot(prefix) == before


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input(prefix: str, args: dict, message: str) -> None:
    b = router_pair(prefix)[1]
    args = dict(args)
    args["netns"] = prefix + "zz" if args.get("netns") == "MISSING" else b
    before = snapshot(prefix)
    result = run_module("netns_route", args)
    assert result["failed"] and message in result["msg"], result
    assert snapshot(prefix) == before
