"""Host devices (``type: device``) on the real kernel: a veth pair the test makes in the root
namespace plays the NIC (deleting a namespace with one end inside would destroy the pair, so it
proves the move back). The check -> apply -> again unchanged -> check cycle, the rename inside,
a match by MAC after the device was renamed in the root namespace (udev at boot), purge and
teardown moving it back under its original name before the namespace goes, the refusals (nothing
changed), and the restore program waiting for a missing device and restoring everything else."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional

from helpers import converge, leftovers, netns_list, restore_program, run, run_module, save_spec, snapshot

MAC = "02:4c:4e:00:00:01"


def make_nic(prefix: str, mac: str = MAC) -> Dict[str, Any]:
    """``PREFIXnic`` (MAC ``mac``), paired with ``PREFIXfar`` in the root namespace; the root link."""
    nic, far = prefix + "nic", prefix + "far"
    run(["ip", "link", "add", nic, "address", mac, "type", "veth", "peer", "name", far])
    run(["ip", "link", "set", nic, "up"])
    return root_link(nic)


def root_link(name: str) -> Dict[str, Any]:
    return json.loads(run(["ip", "-j", "link", "show", "dev", name]))[0]


def links_in(ns: Optional[str]) -> Dict[str, Dict[str, Any]]:
    return {link["ifname"]: link for link in json.loads(run(["ip"] + (["-n", ns] if ns else []) + ["-j", "link", "show"]))}


def device_topology(prefix: str, match: Dict[str, str], name: str = "ext0") -> Dict[str, Any]:
    edge = prefix + "edge"
    return {
        "name": prefix + "dev",
        "namespaces": [{"name": edge, "addresses": [{"dev": name, "address": "10.241.0.2/24"}],
                        "routes": [{"dst": "10.241.9.0/24", "via": "10.241.0.1"}]}],
        "links": [{"type": "device", "name": name, "netns": edge, "match": match, "mtu": 1400}],
    }


def topology(spec: Dict[str, Any], state_dir: str, check: bool = False, **extra: Any) -> Dict[str, Any]:
    return run_module("topology", dict({"topology": spec, "state_dir": state_dir}, **extra), check=check)


def assert_back(prefix: str, original: Dict[str, Any], name: Optional[str] = None) -> None:
    """The device is in the root namespace again, under its original name, with its index and MAC."""
    back = root_link(name or original["ifname"])
    assert (back["ifindex"], back["address"]) == (original["ifindex"], original["address"])
    assert "UP" in back["flags"]  # as it was before the topology took it
    assert prefix + "far" in links_in(None)  # the pair survived: it was never in a namespace that was deleted


def test_device_by_name_cycle_rename_inside_and_teardown_moves_it_back(prefix: str, tmp_path: Any) -> None:
    original = make_nic(prefix)
    run(["ip", "link", "add", prefix + "fgn", "type", "veth", "peer", "name", prefix + "fgp"])  # foreign
    foreign = root_link(prefix + "fgn")
    state_dir = str(tmp_path / "state")
    spec = device_topology(prefix, {"name": prefix + "nic"})
    spec["links"].append({"type": "macvlan", "name": "mv0", "netns": prefix + "edge", "parent": "ext0",
                          "parent_netns": prefix + "edge"})
    applied = converge("topology", {"topology": spec, "state_dir": state_dir}, prefix)
    moves = [c for c in applied["changes"] if c["action"] == "move"]
    assert [(c["object"], c["before"], c["after"]) for c in moves] == [
        ("ext0 in netns %s" % (prefix + "edge"), {"netns": None, "name": prefix + "nic", "type": "device"},
         {"netns": prefix + "edge", "name": "ext0", "type": "device"})]
    assert links_in(prefix + "edge")["mv0"]["link"] == "ext0"
    inside = links_in(prefix + "edge")["ext0"]
    assert (inside["address"], inside["mtu"]) == (MAC, 1400) and "UP" in inside["flags"]
    assert prefix + "nic" not in links_in(None)
    addresses = json.loads(run(["ip", "-n", prefix + "edge", "-j", "addr", "show", "dev", "ext0"]))
    assert any(a["local"] == "10.241.0.2" for a in addresses[0]["addr_info"])
    removed = topology(spec, state_dir, state="absent")
    assert not removed.get("failed"), removed
    assert prefix + "edge" not in netns_list()
    assert_back(prefix, original)
    assert root_link(prefix + "fgn")["ifindex"] == foreign["ifindex"]
    assert sorted(leftovers(prefix)) == sorted([prefix + "nic", prefix + "far", prefix + "fgn", prefix + "fgp"])


def test_device_by_mac_after_udev_renamed_it_and_purge_moves_it_back(prefix: str, tmp_path: Any) -> None:
    original = make_nic(prefix)
    state_dir = str(tmp_path / "state")
    spec = device_topology(prefix, {"mac": MAC.upper()})
    assert not topology(spec, state_dir).get("failed")
    assert topology(spec, state_dir)["changed"] is False  # found in its namespace by MAC
    assert not topology(spec, state_dir, state="absent").get("failed")
    assert_back(prefix, original)
    run(["ip", "link", "set", prefix + "nic", "name", prefix + "ren"])  # udev's name at the next boot
    applied = topology(spec, state_dir)
    assert not applied.get("failed"), applied
    assert "ext0" in links_in(prefix + "edge") and prefix + "ren" not in links_in(None)
    # a purge of a spec without the device: back to the root namespace, the namespace stays
    without = dict(spec, links=[], namespaces=[{"name": prefix + "edge"}])
    purged = topology(without, state_dir, purge=True)
    assert not purged.get("failed"), purged
    assert prefix + "edge" in netns_list() and "ext0" not in links_in(prefix + "edge")
    assert_back(prefix, dict(original, ifname=prefix + "ren"))
    assert not topology(without, state_dir, state="absent").get("failed")
    assert sorted(leftovers(prefix)) == sorted([prefix + "ren", prefix + "far"])


def test_renamed_inside_by_hand_is_found_by_its_identity_and_named_again(prefix: str, tmp_path: Any) -> None:
    original = make_nic(prefix)
    state_dir = str(tmp_path / "state")
    spec = device_topology(prefix, {"name": prefix + "nic"})
    assert not topology(spec, state_dir).get("failed")
    edge = prefix + "edge"
    run(["ip", "-n", edge, "link", "set", "ext0", "down"])
    run(["ip", "-n", edge, "link", "set", "ext0", "name", "other0"])
    checked = topology(spec, state_dir, check=True)
    assert [c["action"] for c in checked["changes"] if c["kind"] == "link"] == ["rename", "update"]
    again = topology(spec, state_dir)
    assert not again.get("failed"), again["msg"]
    assert [c["before"]["name"] for c in again["changes"] if c["action"] == "rename"] == ["other0"]
    assert "ext0" in links_in(edge) and "other0" not in links_in(edge) and "UP" in links_in(edge)["ext0"]["flags"]
    addresses = json.loads(run(["ip", "-n", edge, "-j", "addr", "show", "dev", "ext0"]))  # kept through the rename
    assert [a["local"] for a in addresses[0]["addr_info"] if a["family"] == "inet"] == ["10.241.0.2"]
    assert topology(spec, state_dir)["changed"] is False
    assert not topology(spec, state_dir, state="absent").get("failed")
    assert_back(prefix, original)


def test_refusals_change_nothing(prefix: str, tmp_path: Any) -> None:
    make_nic(prefix)
    state_dir = str(tmp_path / "state")
    other = prefix + "oth"
    run(["ip", "netns", "add", other])
    run(["ip", "link", "add", prefix + "twin", "address", "02:4c:4e:00:00:02", "type", "veth", "peer", "name",
         prefix + "twp"])
    run(["ip", "link", "set", prefix + "twp", "address", "02:4c:4e:00:00:02"])  # two links, one MAC
    run(["ip", "link", "add", prefix + "away", "address", "02:4c:4e:00:00:03", "netns", other, "type", "veth", "peer",
         "name", prefix + "awp"])
    cases = [
        ({"mac": "02:4c:4e:00:00:02"}, "links[0].match.mac", "matches several links"),
        ({"mac": "02:4c:4e:00:00:03"}, "links[0].match", "is in namespace %s" % other),
        ({"name": prefix + "none"}, "link ext0 in netns %s" % (prefix + "edge"), "no device named"),
        ({"name": "lo"}, "links[0].match.name", "loopback"),
    ]
    before = snapshot(prefix)
    for match, where, message in cases:
        result = topology(device_topology(prefix, match), state_dir)
        assert result.get("failed") and where in result["msg"] and message in result["msg"], (match, result["msg"])
    declared = device_topology(prefix, {"name": prefix + "nic"})
    declared["links"].append({"type": "veth", "name": "v0", "netns": prefix + "edge", "peer": prefix + "nic"})
    result = topology(declared, state_dir)
    assert result.get("failed") and "links[0].match.name" in result["msg"] and "declared by this topology" in result["msg"]
    twice = device_topology(prefix, {"name": prefix + "nic"})
    twice["links"].append({"type": "device", "name": "ext1", "netns": prefix + "edge", "match": {"mac": MAC}})
    result = topology(twice, state_dir)
    assert result.get("failed") and "links[1].match" in result["msg"] and "same device" in result["msg"], result["msg"]
    assert snapshot(prefix) == before
    run(["ip", "netns", "delete", other])


def test_veth_whose_peer_the_topology_declares_is_refused(prefix: str, tmp_path: Any) -> None:
    make_nic(prefix)
    spec = device_topology(prefix, {"name": prefix + "nic"})
    spec["links"].append({"type": "veth", "name": "in", "netns": prefix + "edge", "peer": prefix + "far"})
    before = snapshot(prefix)
    result = topology(spec, str(tmp_path / "state"))
    assert result.get("failed") and "links[0].match" in result["msg"] and "veth whose peer" in result["msg"], result["msg"]
    assert snapshot(prefix) == before


def test_check_mode_and_diff_change_nothing(prefix: str, tmp_path: Any) -> None:
    original = make_nic(prefix)
    spec = device_topology(prefix, {"mac": MAC})
    state_dir = str(tmp_path / "state")
    before = snapshot(prefix)
    checked = topology(spec, state_dir, check=True)
    assert checked["changed"] is True and snapshot(prefix) == before
    key = "link ext0 in netns %s" % (prefix + "edge")
    assert checked["diff"]["before"][key]["name"] == prefix + "nic" and checked["diff"]["after"][key]["name"] == "ext0"
    assert not topology(spec, state_dir).get("failed")
    with open(os.path.join(state_dir, prefix + "dev.owned.json"), encoding="utf-8") as handle:
        devices = json.load(handle)["devices"]
    assert [(d["netns"], d["name"], d["original"], d["up"]) for d in devices] == [(prefix + "edge", "ext0", prefix + "nic", True)]
    placed = snapshot(prefix)
    checked = topology(spec, state_dir, check=True, state="absent")  # a teardown in check mode moves nothing back
    assert checked["changed"] is True and snapshot(prefix) == placed
    assert [c["action"] for c in checked["changes"] if c["kind"] == "link"] == ["move"]
    assert not topology(spec, state_dir, state="absent").get("failed")
    assert_back(prefix, original)


def test_restore_program_waits_for_a_missing_device_and_restores_everything_else(prefix: str, tmp_path: Any) -> None:
    spec = device_topology(prefix, {"name": prefix + "nic"})
    spec["namespaces"].append({"name": prefix + "b"})
    path, state = save_spec(tmp_path, spec)
    started = time.monotonic()
    applied = restore_program("apply", path, "--state-dir", state, "--wait-parents", "1")
    assert applied.returncode == 2 and time.monotonic() - started >= 1
    assert "device ext0 in %s did not appear within 1s" % (prefix + "edge") in applied.stderr, applied.stderr
    assert {prefix + "edge", prefix + "b"} <= set(netns_list())
    original = make_nic(prefix)
    assert restore_program("apply", path, "--state-dir", state, "--wait-parents", "1").returncode == 0
    assert "ext0" in links_in(prefix + "edge")
    assert restore_program("check", path, "--state-dir", state).returncode == 0
    assert restore_program("apply", path, "--state-dir", state, "--wait-parents", "1").returncode == 0  # in place
    assert restore_program("teardown", path, "--state-dir", state).returncode == 0
    assert_back(prefix, original)
    assert not [ns for ns in netns_list() if ns.startswith(prefix)]


def test_a_refusal_part_way_rolls_the_move_back(prefix: str, tmp_path: Any) -> None:
    """IPv6 is disabled in the namespace: the kernel refuses the IPv6 address after the device was
    moved in; the rollback moves it back (and deletes the namespace the run made)."""
    original = make_nic(prefix)
    spec = device_topology(prefix, {"name": prefix + "nic"})
    ns = spec["namespaces"][0]
    ns["sysctls"] = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}
    ns["addresses"].append({"dev": "ext0", "address": "fd41::2/64", "nodad": True})
    result = topology(spec, str(tmp_path / "state"))
    assert result.get("failed") and "fd41::2" in result["msg"], result
    assert prefix + "edge" not in netns_list()
    assert_back(prefix, original)
