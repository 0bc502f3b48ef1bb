"""Vxlan links on the real kernel: each made on its underlay namespace (a "host" namespace, or the
root namespace) and moved into its tenant namespace in the same request, so that the overlay lives
in the tenant and the UDP socket stays on the underlay; pings between two tenants through the
overlay, over IPv4 and IPv6 underlays; the check -> apply -> again unchanged -> check cycle; a
changed id replaces the topology's own vxlan; a foreign vxlan of the same name is refused with what
differs; teardown leaves nothing."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any, Dict, List, Optional

from helpers import converge, difference, leftovers, restore_program, run, run_module, save_spec, snapshot
from test_faults import KILLER, python

VXLAN_PORT_HEX = "12B5"  # 4789, as /proc/net/udp{,6} lists local ports


def vxlan_topology(prefix: str, vni: int = 42) -> Dict[str, Any]:
    """Host namespaces U1 and U2 joined by a veth (underlay 198.51.100.0/24 and fd51:100::/64);
    tenants T1 (underlay U1) and T2 (underlay U2), each with vx0 (overlay 10.242.0.0/24 over IPv4),
    vx6 (overlay 10.243.0.0/24 over IPv6) and vxm (overlay 10.245.0.0/24, multicast group)."""
    u1, u2, t1, t2 = (prefix + name for name in ("u1", "u2", "t1", "t2"))
    return {
        "name": prefix + "vxlan",
        "namespaces": [
            {"name": u1, "addresses": [{"dev": "und0", "address": "198.51.100.1/24"},
                                       {"dev": "und0", "address": "fd51:100::1/64", "nodad": True}]},
            {"name": u2, "addresses": [{"dev": "und0", "address": "198.51.100.2/24"},
                                       {"dev": "und0", "address": "fd51:100::2/64", "nodad": True}]},
            {"name": t1, "addresses": [{"dev": "vx0", "address": "10.242.0.1/24"},
                                       {"dev": "vx6", "address": "10.243.0.1/24"},
                                       {"dev": "vxm", "address": "10.245.0.1/24"}],
             "routes": [{"dst": "10.250.0.0/24", "via": "10.242.0.2"}]},
            {"name": t2, "addresses": [{"dev": "vx0", "address": "10.242.0.2/24"},
                                       {"dev": "vx6", "address": "10.243.0.2/24"},
                                       {"dev": "vxm", "address": "10.245.0.2/24"}]},
        ],
        "links": [
            {"type": "vxlan", "name": "vx0", "netns": t1, "underlay_netns": u1, "id": vni,
             "remote": "198.51.100.2", "local": "198.51.100.1", "dev": "und0"},
            {"type": "veth", "name": "und0", "netns": u1, "peer": "und0", "peer_netns": u2},
            {"type": "vxlan", "name": "vx0", "netns": t2, "underlay_netns": u2, "id": vni,
             "remote": "198.51.100.1", "port": 4789},
            {"type": "vxlan", "name": "vx6", "netns": t1, "underlay_netns": u1, "id": 60,
             "remote": "fd51:100::2", "local": "fd51:100::1", "dev": "und0"},
            {"type": "vxlan", "name": "vx6", "netns": t2, "underlay_netns": u2, "id": 60,
             "remote": "fd51:100::1", "dev": "und0"},
            {"type": "vxlan", "name": "vxm", "netns": t1, "underlay_netns": u1, "id": 99, "group": "239.1.1.42",
             "dev": "und0"},
            {"type": "vxlan", "name": "vxm", "netns": t2, "underlay_netns": u2, "id": 99, "group": "239.1.1.42",
             "dev": "und0"},
        ],
    }


def details(ns: str, name: str) -> Dict[str, Any]:
    return json.loads(run(["ip", "-d", "-j", "link", "show", "dev", name], ns=ns))[0]


def udp_ports(ns: Optional[str]) -> List[str]:
    """The local UDP ports (hex, as /proc/net/udp lists them) of ``ns``, both families."""
    ports = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        lines = run(["cat", table], ns=ns).splitlines()[1:]
        ports += [line.split()[1].rsplit(":", 1)[1] for line in lines if line.strip()]
    return ports


def pings(ns: str, address: str) -> bool:
    """Whether ``ns`` reaches ``address`` (a few tries: the overlay learns its neighbour first)."""
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", address],
                          capture_output=True, check=False).returncode == 0


def test_vxlan_overlay_between_tenants_id_change_replaces_and_teardown_leaves_nothing(
        prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    spec = vxlan_topology(prefix)
    u1, t1, t2 = prefix + "u1", prefix + "t1", prefix + "t2"
    before = snapshot(prefix)
    applied = converge("topology", {"topology": spec, "state_dir": state_dir}, prefix)
    creations = [c for c in applied["changes"] if c["action"] == "create" and (c["after"] or {}).get("type") == "vxlan"]
    assert len(creations) == 6, applied["changes"]
    assert creations[0]["after"] == {"type": "vxlan", "id": 42, "remote": "198.51.100.2", "local": "198.51.100.1",
                                     "dev": "und0", "port": 4789, "underlay_netns": u1}
    vx0 = details(t1, "vx0")
    data = vx0["linkinfo"]["info_data"]
    assert vx0["linkinfo"]["info_kind"] == "vxlan" and data["id"] == 42 and data["port"] == 4789
    assert data["remote"] == "198.51.100.2" and data["local"] == "198.51.100.1"
    assert "link_netnsid" in vx0  # its link namespace is not the tenant: the underlay U1
    # the UDP socket is on the underlay, not in the tenant
    assert VXLAN_PORT_HEX in udp_ports(u1) and VXLAN_PORT_HEX not in udp_ports(t1)
    assert pings(t1, "10.242.0.2") and pings(t2, "10.242.0.1")
    assert pings(t1, "10.243.0.2")  # over the IPv6 underlay
    assert pings(t1, "10.245.0.2")  # flooded to a multicast group on the underlay

    info = run_module("netns_info", {"names": [t1, u1]})
    assert not info.get("failed"), info
    reported = next(link for ns in info["namespaces"] if ns["name"] == t1 for link in ns["links"]
                    if link["name"] == "vx0")
    assert reported["vxlan"] == {"id": 42, "remote": "198.51.100.2", "local": "198.51.100.1", "dev": "und0",
                                 "port": 4789, "underlay_netns": u1}, reported

    changed = vxlan_topology(prefix, vni=43)
    checked = run_module("topology", {"topology": changed, "state_dir": state_dir}, check=True)
    assert checked["changed"] and not checked.get("failed"), checked
    replaced = [(c["action"], c["object"]) for c in checked["changes"] if c["action"] in ("create", "delete")]
    assert replaced == [("delete", "vx0 in netns %s" % t1), ("create", "vx0 in netns %s" % t1),
                        ("delete", "vx0 in netns %s" % t2), ("create", "vx0 in netns %s" % t2),
                        ("create", "10.242.0.1/24 on vx0 in netns %s" % t1),
                        ("create", "10.242.0.2/24 on vx0 in netns %s" % t2),
                        ("create", "10.250.0.0/24 table 254 metric 0 in netns %s" % t1)], checked["changes"]
    assert checked["diff"]["before"]["link vx0 in netns %s" % t1]["id"] == 42
    assert checked["diff"]["after"]["link vx0 in netns %s" % t1]["id"] == 43
    assert details(t1, "vx0")["linkinfo"]["info_data"]["id"] == 42  # check mode changed nothing
    again = run_module("topology", {"topology": changed, "state_dir": state_dir})
    assert again["changed"] and not again.get("failed"), again
    assert details(t1, "vx0")["linkinfo"]["info_data"]["id"] == 43
    assert run_module("topology", {"topology": changed, "state_dir": state_dir})["changed"] is False
    assert pings(t1, "10.242.0.2")  # its addresses were given to the new one
    assert "10.250.0.0/24" in run(["ip", "route", "show"], ns=t1)  # and its route

    # the kernel refuses the next id on U1 (a vxlan of U1's own has it): the run fails, names the
    # replaced vxlan it could not bring back, and the next run with the id in use makes it anew
    run(["ip", "-n", u1, "link", "add", "vxf", "type", "vxlan", "id", "44", "remote", "198.51.100.9", "dstport", "4789"])
    failed = run_module("topology", {"topology": vxlan_topology(prefix, vni=44), "state_dir": state_dir})
    assert failed.get("failed") and "delete link vx0 in netns %s (cannot be undone)" % t1 in failed["msg"], failed
    assert "vx0" not in [link["ifname"] for link in json.loads(run(["ip", "-j", "link", "show"], ns=t1))]
    assert details(t2, "vx0")["linkinfo"]["info_data"]["id"] == 43  # planned after the failure: untouched
    redone = run_module("topology", {"topology": changed, "state_dir": state_dir})
    assert redone["changed"] and not redone.get("failed"), redone
    assert run_module("topology", {"topology": changed, "state_dir": state_dir})["changed"] is False
    assert pings(t1, "10.242.0.2")
    run(["ip", "-n", u1, "link", "del", "vxf"])

    removed = run_module("topology", {"topology": changed, "state": "absent", "state_dir": state_dir})
    assert not removed.get("failed"), removed
    after = snapshot(prefix)
    assert after == before, difference(before, after)
    assert leftovers(prefix) == []


def test_a_foreign_vxlan_of_the_same_name_is_refused_naming_what_differs(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    spec = vxlan_topology(prefix)
    u1, t1 = prefix + "u1", prefix + "t1"
    for ns in (u1, t1):
        run(["ip", "netns", "add", ns])
    # made by someone else on the same underlay, with another id
    run(["ip", "-n", u1, "link", "add", "vx0", "netns", t1, "type", "vxlan", "id", "7", "remote", "198.51.100.2",
         "dstport", "4789"])
    before = snapshot(prefix)
    refused = run_module("topology", {"topology": spec, "state_dir": state_dir})
    assert refused.get("failed"), refused
    assert "vx0 in netns %s" % t1 in refused["msg"] and "id 7 (declared 42)" in refused["msg"], refused["msg"]
    assert "refusing to replace it" in refused["msg"]
    after = snapshot(prefix)
    assert after == before, difference(before, after)
    assert details(t1, "vx0")["linkinfo"]["info_data"]["id"] == 7
    run(["ip", "-n", t1, "link", "del", "vx0"])
    for ns in (t1, u1):
        run(["ip", "netns", "delete", ns])
    assert leftovers(prefix) == []


def root_underlay_topology(prefix: str) -> Dict[str, Any]:
    """A veth of ours from the root namespace (203.0.113.1/30) to host namespace U3 (.2); tenant T3's
    vxlan on the root namespace, tenant T4's on U3."""
    u3, t3, t4, root_end = prefix + "u3", prefix + "t3", prefix + "t4", prefix + "r0"
    return {
        "name": prefix + "vxroot",
        "namespaces": [
            {"name": u3, "addresses": [{"dev": "und0", "address": "203.0.113.2/30"}]},
            {"name": t3, "addresses": [{"dev": "vx0", "address": "10.244.0.1/24"}]},
            {"name": t4, "addresses": [{"dev": "vx0", "address": "10.244.0.2/24"}]},
        ],
        "links": [
            {"type": "veth", "name": root_end, "peer": "und0", "peer_netns": u3},
            {"type": "vxlan", "name": "vx0", "netns": t3, "id": 4242, "remote": "203.0.113.2", "local": "203.0.113.1",
             "dev": root_end},
            {"type": "vxlan", "name": "vx0", "netns": t4, "underlay_netns": u3, "id": 4242, "remote": "203.0.113.1"},
        ],
        "host": {"addresses": [{"dev": root_end, "address": "203.0.113.1/30"}]},
    }


def test_a_vxlan_on_the_root_namespace_underlay(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    spec = root_underlay_topology(prefix)
    t3, t4 = prefix + "t3", prefix + "t4"
    before = snapshot(prefix)
    converge("topology", {"topology": spec, "state_dir": state_dir}, prefix)
    assert "link_netnsid" in details(t3, "vx0")  # the root namespace, seen from T3
    assert pings(t3, "10.244.0.2") and pings(t4, "10.244.0.1")
    info = run_module("netns_info", {"names": [t3]})
    assert not info.get("failed"), info
    reported = next(link for ns in info["namespaces"] if ns["name"] == t3 for link in ns["links"] if link["name"] == "vx0")
    assert reported["vxlan"] == {"id": 4242, "remote": "203.0.113.2", "local": "203.0.113.1", "dev": prefix + "r0",
                                 "port": 4789, "underlay_netns": None}, reported
    smaller = copy.deepcopy(spec)
    smaller["links"] = smaller["links"][:1] + smaller["links"][2:]
    smaller["namespaces"][1].pop("addresses")
    purged = run_module("topology", {"topology": smaller, "purge": True, "state_dir": state_dir})
    assert not purged.get("failed"), purged
    assert ("delete", "vx0 in netns %s" % t3) in [(c["action"], c["object"]) for c in purged["changes"]], purged["changes"]
    assert "vx0" not in [link["ifname"] for link in json.loads(run(["ip", "-j", "link", "show"], ns=t3))]
    removed = run_module("topology", {"topology": smaller, "state": "absent", "state_dir": state_dir})
    assert not removed.get("failed"), removed
    after = snapshot(prefix)
    assert after == before, difference(before, after)
    assert leftovers(prefix) == []


def test_the_restore_program_builds_checks_and_tears_down_vxlans(prefix: str, tmp_path: Any) -> None:
    """The boot path: the same engine from the saved file, a vxlan's drift (deleted by hand) reported."""
    path, state = save_spec(tmp_path, vxlan_topology(prefix))
    t1, t2 = prefix + "t1", prefix + "t2"
    before = snapshot(prefix)
    applied = restore_program("apply", path, "--state-dir", state)
    assert applied.returncode == 0, (applied.stdout, applied.stderr)
    assert restore_program("check", path, "--state-dir", state).returncode == 0
    assert pings(t1, "10.242.0.2")
    run(["ip", "-n", t2, "link", "del", "vx6"])
    checked = restore_program("check", path, "--state-dir", state)
    assert checked.returncode == 1 and "vx6 in netns %s" % t2 in checked.stdout, (checked.stdout, checked.stderr)
    assert restore_program("apply", path, "--state-dir", state).returncode == 0
    assert pings(t1, "10.243.0.2")
    assert restore_program("teardown", path, "--state-dir", state).returncode == 0
    after = snapshot(prefix)
    assert after == before, difference(before, after)
    assert leftovers(prefix) == []


def test_a_run_killed_between_a_replacements_deletion_and_creation_is_finished_and_owns_the_new_one(
        prefix: str, tmp_path: Any) -> None:
    """Killed right after the replaced vxlan of T1 is made: the next run finishes the plan, and a later
    change of the id still replaces that vxlan (the run had claimed it ahead, by name)."""
    path, state = save_spec(tmp_path, vxlan_topology(prefix, vni=42))
    t1 = prefix + "t1"
    assert restore_program("apply", path, "--state-dir", state).returncode == 0
    changed, _state = save_spec(tmp_path, vxlan_topology(prefix, vni=43), name="changed.json")
    killed = python(KILLER, changed, state, env={"KILL_AFTER": "2"})  # the deletion, then the creation
    assert killed.returncode == -9, (killed.stdout, killed.stderr)
    assert details(t1, "vx0")["linkinfo"]["info_data"]["id"] == 43
    resumed = restore_program("apply", changed, "--state-dir", state)
    assert resumed.returncode == 0, resumed.stderr
    again, _state = save_spec(tmp_path, vxlan_topology(prefix, vni=44), name="again.json")
    replaced = restore_program("apply", again, "--state-dir", state)
    assert replaced.returncode == 0, replaced.stderr
    assert details(t1, "vx0")["linkinfo"]["info_data"]["id"] == 44
    assert pings(t1, "10.242.0.2")
    assert restore_program("teardown", again, "--state-dir", state).returncode == 0
    assert leftovers(prefix) == []
