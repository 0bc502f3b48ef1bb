"""netns_info, the restore program's show and graph, on the real kernel. The objects are made with
iproute2 (not our engine), so the module is checked against an independent builder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any, Dict, Iterator, List

import pytest

from helpers import netns_list, restore_program, run, run_module, save_spec
from test_topology import small_topology

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "demo-topology.json")


@pytest.fixture
def processes() -> Iterator[List[subprocess.Popen]]:
    """Sleepers a test starts (to hold namespaces); killed afterwards."""
    started: List[subprocess.Popen] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def build_by_hand(prefix: str) -> None:
    """root <-veth-> A <-veth-> B (both ends in non-root namespaces), a bridge in A with the A-B end
    as port, a macvlan in B on the root end, a route in table 100 and policy rules towards it, a
    sysctl, an iptables rule, DNS. (The links
across namespaces make the kernel assign nsids.)"""
    a, b = prefix + "A", prefix + "B"
    run(["ip", "netns", "add", a])
    run(["ip", "netns", "add", b])
    run(["ip", "link", "add", prefix + "r", "type", "veth", "peer", "name", "ra", "netns", a])
    run(["ip", "-n", a, "link", "add", "ab", "mtu", "1400", "type", "veth", "peer", "name", "ba", "mtu", "1400", "netns", b])
    run(["ip", "-n", a, "link", "add", "br0", "type", "bridge"])
    run(["ip", "-n", a, "link", "set", "ab", "master", "br0"])
    run(["ip", "link", "add", "link", prefix + "r", "name", prefix + "mv", "type", "macvlan", "mode", "bridge"])
    run(["ip", "link", "set", prefix + "mv", "netns", b, "name", "mv0"])
    for ns, dev in ((None, prefix + "r"), (a, "ra"), (a, "ab"), (a, "br0"), (a, "lo"), (b, "ba"), (b, "mv0")):
        run(["ip"] + (["-n", ns] if ns else []) + ["link", "set", dev, "up"])
    run(["ip", "addr", "add", "10.233.1.1/30", "dev", prefix + "r"])
    run(["ip", "-n", a, "addr", "add", "10.233.1.2/30", "dev", "ra"])
    run(["ip", "-n", a, "addr", "add", "10.233.2.1/24", "dev", "br0"])
    run(["ip", "-n", b, "addr", "add", "10.233.2.2/24", "dev", "ba"])
    run(["ip", "-n", a, "route", "add", "default", "via", "10.233.1.1"])
    run(["ip", "-n", b, "route", "add", "10.233.9.0/24", "via", "10.233.2.1", "table", "100"])
    run(["ip", "-n", b, "rule", "add", "priority", "1000", "from", "10.233.2.0/24", "table", "100"])
    run(["ip", "-n", b, "-6", "rule", "add", "priority", "1001", "fwmark", "0x10/0xf0", "iif", "ba", "table", "100"])
    run(["ip", "-n", b, "rule", "add", "priority", "1002", "ipproto", "tcp", "table", "100"])  # not declarable
    run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=a)
    run(["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"], ns=a)
    os.makedirs("/etc/netns/" + a, exist_ok=True)
    with open("/etc/netns/%s/resolv.conf" % a, "w") as handle:
        handle.write("nameserver 192.0.2.53\n")


def by_name(items: List[Dict[str, Any]], name: str) -> Dict[str, Any]:
    return next(item for item in items if item["name"] == name)


def test_every_field(prefix: str, processes: List[subprocess.Popen]) -> None:
    build_by_hand(prefix)
    a, b = prefix + "A", prefix + "B"
    inside = subprocess.Popen(["ip", "netns", "exec", a, "sleep", "60"])
    anonymous = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    processes += [inside, anonymous]
    run(["sh", "-c", "sleep 0.3"])  # let both exec
    before = netns_list()
    result = run_module("netns_info", {"names": [a, b, prefix + "nope"]}, check=True)
    assert result["changed"] is False and not result.get("failed"), result
    assert netns_list() == before  # a missing name is reported, never created
    assert result["missing"] == [prefix + "nope"]
    ns_a, ns_b = by_name(result["namespaces"], a), by_name(result["namespaces"], b)
    assert ns_a["id"] == os.stat("/run/netns/" + a).st_ino and ns_a["path"] == "/run/netns/" + a
    assert inside.pid in ns_a["pids"] or any(os.stat("/proc/%d/ns/net" % p).st_ino == ns_a["id"] for p in ns_a["pids"])
    nsids = {entry["name"]: entry.get("id") for entry in json.loads(run(["ip", "-j", "netns", "list"]))}
    assert (ns_a["nsid"], ns_b["nsid"]) == (nsids[a], nsids[b]) and ns_b["nsid"] is not None
    assert ns_a["nameservers"] == ["192.0.2.53"] and ns_b["nameservers"] is None

    ab, ba = by_name(ns_a["links"], "ab"), by_name(ns_b["links"], "ba")
    assert ab["kind"] == "veth" and ab["peer"] == {"netns": b, "name": "ba"} and ab["mtu"] == 1400
    assert ba["peer"] == {"netns": a, "name": "ab"} and ba["state"] == "up"
    assert ab["master"] == "br0" and by_name(ns_a["links"], "br0")["kind"] == "bridge"
    assert by_name(ns_a["links"], "ra")["peer"] == {"netns": None, "name": prefix + "r"}
    mac = json.loads(run(["ip", "-n", a, "-j", "link", "show", "dev", "ab"]))[0]["address"]
    assert ab["mac"] == mac
    mv = by_name(ns_b["links"], "mv0")
    assert mv["kind"] == "macvlan" and mv["mode"] == "bridge" and mv["parent"] == {"netns": None, "name": prefix + "r"}
    assert {"dev": "br0", "address": "10.233.2.1/24"} in ns_a["addresses"]
    assert {"dst": "default", "via": "10.233.1.1"}.items() <= next(r for r in ns_a["routes"] if r["dst"] == "default").items()
    assert any(r["dst"] == "10.233.9.0/24" and r["table"] == 100 and r["via"] == "10.233.2.1" for r in ns_b["routes"])
    assert {"family": "inet", "priority": 1000, "from": "10.233.2.0/24", "table": 100} in ns_b["rules"]
    assert {"family": "inet6", "priority": 1001, "iif": "ba", "fwmark": "0x10", "fwmask": "0xf0", "table": 100} in ns_b["rules"]
    assert {"family": "inet", "priority": 1002, "table": 100, "other": True} in ns_b["rules"]
    assert {"family": "inet", "priority": 32766, "table": 254} in ns_a["rules"]  # the kernel's own are facts too
    assert {"family": "inet6", "priority": 32766, "table": 254} in result["host"]["rules"]
    assert ns_a["sysctls"] == {"net.ipv4.ip_forward": "1"} and ns_b["sysctls"] == {}
    assert ns_a["iptables"]["ipv4"]["filter"]["INPUT"]["rules"] == ["-p tcp -m tcp --dport 22 -j ACCEPT"]
    root_ids = {entry["id"] for entry in result["namespaces"]} | {result["host"]["id"]}
    held = next(entry for entry in result["anonymous"] if anonymous.pid in entry["pids"])
    assert held["id"] == os.stat("/proc/%d/ns/net" % anonymous.pid).st_ino and held["id"] not in root_ids
    assert any(l["name"] == prefix + "r" for l in result["host"]["links"])


def comparable(result: Dict[str, Any]) -> Dict[str, Any]:
    """What must survive info -> spec -> apply: not ids, MACs, ifindexes, pids or link-local addresses."""
    out = {}
    for ns in result["namespaces"]:
        out[ns["name"]] = {
            "links": sorted((l["name"], l["kind"], l["mtu"], l["state"], l["master"], json.dumps(l["peer"])) for l in ns["links"]),
            "addresses": sorted(a["address"] for a in ns["addresses"] if not a["address"].startswith("fe80:")),
            # `ip route add` says proto boot (3), the engine proto static (4): both are the administrator's
            "routes": sorted(json.dumps(dict(r, protocol="admin" if r["protocol"] in (3, 4) else r["protocol"]), sort_keys=True)
                             for r in ns["routes"] if not r["dst"].startswith("fe80:")),
            "rules": sorted(json.dumps(r, sort_keys=True) for r in ns["rules"] if not r.get("other")),
            "sysctls": ns["sysctls"], "nameservers": ns["nameservers"], "iptables": ns["iptables"],
        }
    return out


def test_round_trip_info_spec_apply(prefix: str, tmp_path: Any) -> None:
    """info -> spec -> apply on a clean host -> info gives the same."""
    build_by_hand(prefix)
    names = [prefix + "A", prefix + "B"]
    first = run_module("netns_info", {"names": names, "spec_name": prefix + "cap"})
    spec = first["spec"]
    for ns in names:
        run(["ip", "netns", "delete", ns])
    run(["ip", "link", "delete", prefix + "r"])
    shutil.rmtree("/etc/netns/" + prefix + "A")
    run(["sh", "-c", "sleep 0.5"])
    applied = run_module("topology", {"topology": spec, "state_dir": str(tmp_path / "state")})
    assert not applied.get("failed"), applied
    again = run_module("netns_info", {"names": names, "spec_name": prefix + "cap"})
    assert comparable(again) == comparable(first)
    assert again["spec"] == spec
    assert by_name(spec["namespaces"], prefix + "B")["rules"] == [
        {"priority": 1000, "from": "10.233.2.0/24", "table": 100},
        {"family": "inet6", "priority": 1001, "iif": "ba", "fwmark": "0x10", "fwmask": "0xf0", "table": 100}]
    run_module("topology", {"topology": spec, "state": "absent", "state_dir": str(tmp_path / "state")})


def test_show_and_graph_of_live_state_and_of_a_spec(prefix: str, tmp_path: Any) -> None:
    spec = small_topology(prefix)
    path, state_dir = save_spec(tmp_path, spec)
    assert restore_program("apply", path, "--state-dir", state_dir).returncode == 0
    shown = restore_program("show", path)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert [ns["name"] for ns in state["namespaces"]] == [prefix + "a", prefix + "b"]
    assert by_name(state["namespaces"][0]["links"], "ab")["peer"] == {"netns": prefix + "b", "name": "ba"}
    drawn = restore_program("graph", path, "--format", "mermaid")
    assert drawn.returncode == 0 and drawn.stdout.startswith("flowchart LR")
    assert "10.231.1.2/30" in drawn.stdout and "netns %sa" % prefix in drawn.stdout
    live = restore_program("graph", path, "--live", "--format", "dot")
    assert live.returncode == 0 and live.stdout.startswith("graph ")
    assert "ab 10.231.2.1/30 fd31:2::1/64" in live.stdout and "bridge br" in live.stdout
    if shutil.which("dot"):
        png = subprocess.run(["dot", "-Tpng"], input=live.stdout.encode(), capture_output=True, check=True).stdout
        assert png.startswith(b"\x89PNG")
    assert restore_program("teardown", path, "--state-dir", state_dir).returncode == 0


def test_check_lists_each_differing_object(prefix: str, tmp_path: Any) -> None:
    spec = small_topology(prefix)
    path, state_dir = save_spec(tmp_path, spec)
    assert restore_program("apply", path, "--state-dir", state_dir).returncode == 0
    run(["sysctl", "-qw", "net.ipv4.ip_forward=0"], ns=prefix + "a")
    run(["ip", "-n", prefix + "b", "route", "del", "default"])
    drift = restore_program("check", path, "--state-dir", state_dir, "--json")
    assert drift.returncode == 1
    changes = {(c["kind"], c["object"]): c for c in json.loads(drift.stdout)["changes"]}
    assert len(changes) == 2, changes
    sysctl = next(c for (kind, _obj), c in changes.items() if kind == "sysctl")
    assert sysctl["before"] == {"value": "0"} and sysctl["after"] == {"value": "1"}
    assert any(kind == "route" and c["before"] is None for (kind, _obj), c in changes.items())
    assert restore_program("teardown", path, "--state-dir", state_dir).returncode == 0


@pytest.mark.skipif(not shutil.which("dot"), reason="graphviz (dot) is not installed")
def test_demo_picture_renders(tmp_path: Any) -> None:
    """The README's picture comes from docs/demo-topology.json through `graph --format dot`."""
    drawn = restore_program("graph", DEMO, "--format", "dot")
    assert drawn.returncode == 0, drawn.stderr
    out = tmp_path / "demo.png"
    subprocess.run(["dot", "-Tpng", "-o", str(out)], input=drawn.stdout.encode(), check=True)
    assert out.read_bytes().startswith(b"\x89PNG")
