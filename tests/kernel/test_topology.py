"""The topology module and the restore program on the real kernel."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import time
from typing import Any, Dict

import pytest

from helpers import (converge, netns_list, normalised, restore_program, run, run_module, save_spec, snapshot,
                     wait_settled)


def small_topology(prefix: str) -> Dict[str, Any]:
    """root <-veth-> A (router, forwarding) <-veth-> B, a bridge in B with a dummy-free port,
    sysctls, DNS, v4+v6 addresses, routes and rules."""
    a, b = prefix + "a", prefix + "b"
    return {
        "name": prefix + "topo",
        "namespaces": [
            {"name": a, "sysctls": {"net.ipv4.ip_forward": 1},
             "addresses": [{"dev": "r", "address": "10.231.1.2/30"},
                           {"dev": "ab", "address": "10.231.2.1/30"},
                           {"dev": "ab", "address": "fd31:2::1/64", "nodad": True}],
             "routes": [{"dst": "default", "via": "10.231.1.1"}],
             "iptables": [{"table": "filter", "chains": [
                 {"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]},
                 {"table": "nat", "chains": [
                     {"name": "POSTROUTING", "rules": ["-s 10.231.2.0/30 -o r -j MASQUERADE"]}]}]},
            {"name": b, "nameservers": ["192.0.2.53"],
             "addresses": [{"dev": "br", "address": "10.231.2.2/30"},
                           {"dev": "br", "address": "fd31:2::2/64", "nodad": True}],
             "routes": [{"dst": "default", "via": "10.231.2.1"}]},
        ],
        "links": [
            {"type": "veth", "name": prefix + "r", "peer": "r", "peer_netns": a},
            {"type": "veth", "name": "ab", "netns": a, "peer": "ba", "peer_netns": b, "mtu": 1400, "peer_mtu": 1400},
            {"type": "bridge", "name": "br", "netns": b, "ports": ["ba"]},
        ],
        "host": {"addresses": [{"dev": prefix + "r", "address": "10.231.1.1/30"}]},
    }


def test_apply_cycle_ping_and_teardown(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    spec = small_topology(prefix)
    before = snapshot(prefix)
    applied = converge("topology", {"topology": spec, "state_dir": state_dir}, prefix)
    assert applied["summary"]["netns"] == {"create": 2}
    a, b = prefix + "a", prefix + "b"
    assert {a, b} <= set(netns_list())
    run(["ping", "-c", "1", "-W", "2", "10.231.2.1"], ns=b)  # over the bridge
    run(["ping", "-c", "1", "-W", "2", "10.231.1.1"], ns=b)  # routed and masqueraded by A
    run(["ping", "-6", "-c", "1", "-W", "2", "fd31:2::1"], ns=b)
    assert run(["sysctl", "-n", "net.ipv4.ip_forward"], ns=a).strip() == "1"
    with open("/etc/netns/%s/resolv.conf" % b) as handle:
        assert "nameserver 192.0.2.53" in handle.read()
    removed = converge("topology", {"topology": spec, "state": "absent", "state_dir": state_dir}, prefix)
    assert removed["summary"]["netns"] == {"delete": 2}
    assert snapshot(prefix) == before


def test_bridge_declared_before_its_ports(prefix: str, tmp_path: Any) -> None:
    """A switch: a bridge in one namespace joining three others, declared before its ports."""
    sw = prefix + "sw"
    hosts = [prefix + "h%d" % i for i in (1, 2, 3)]
    spec = {
        "name": prefix + "switch",
        "namespaces": [{"name": sw}] + [{"name": h, "addresses": [{"dev": "e", "address": "10.231.9.%d/24" % i}]}
                                        for i, h in enumerate(hosts, 1)],
        "links": [{"type": "bridge", "name": "br0", "netns": sw, "ports": ["p1", "p2", "p3"]}]
        + [{"type": "veth", "name": "p%d" % i, "netns": sw, "peer": "e", "peer_netns": h} for i, h in enumerate(hosts, 1)],
    }
    state_dir = str(tmp_path / "state")
    converge("topology", {"topology": spec, "state_dir": state_dir}, prefix)
    for i, h in enumerate(hosts, 1):
        run(["ping", "-c", "1", "-W", "2", "10.231.9.%d" % (i % 3 + 1)], ns=h)
    converge("topology", {"topology": spec, "state": "absent", "state_dir": state_dir}, prefix)
    assert not set(netns_list()) & {sw, *hosts}


def test_check_mode_predicts_whole_topology_on_empty_host(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    spec = small_topology(prefix)
    before = snapshot(prefix)
    checked = run_module("topology", {"topology": spec, "state_dir": state_dir}, check=True)
    assert checked["changed"] and not checked.get("failed"), checked
    assert snapshot(prefix) == before
    assert not os.path.exists(state_dir)
    applied = run_module("topology", {"topology": spec, "state_dir": state_dir})
    assert [c["object"] for c in applied["changes"]] == [c["object"] for c in checked["changes"]]
    # The result names the topology it was given instead of repeating it (see the module's notes).
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    for result in (checked, applied):
        assert result["invocation"]["module_args"] == {
            "topology": {"name": prefix + "topo", "namespaces": 2, "links": 3, "sha256": digest},
            "state": "present", "purge": False, "state_dir": state_dir, "rollback": True}


def test_bad_topology_changes_nothing(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    spec = small_topology(prefix)
    spec["namespaces"][1]["routes"][0]["via"] = "10.99.99.99"
    before = snapshot(prefix)
    result = run_module("topology", {"topology": spec, "state_dir": state_dir})
    assert result["failed"]
    assert result["msg"].startswith("namespaces[1].routes[0].via: gateway 10.99.99.99")
    assert result["invocation"]["module_args"]["topology"] == spec  # a failure repeats the arguments in full
    assert snapshot(prefix) == before


def test_purge_removes_only_what_it_created(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    foreign = prefix + "f"
    run(["ip", "netns", "add", foreign])  # exists before the topology declares it
    spec = {"name": prefix + "p", "namespaces": [{"name": prefix + "x"}, {"name": prefix + "y"}, {"name": foreign}],
            "links": [{"type": "veth", "name": "xy", "netns": prefix + "x", "peer": "yx", "peer_netns": prefix + "y"}]}
    run_module("topology", {"topology": spec, "state_dir": state_dir})
    smaller = copy.deepcopy(spec)
    smaller["namespaces"] = [{"name": prefix + "x"}]
    smaller["links"] = []
    kept = run_module("topology", {"topology": smaller, "state_dir": state_dir})
    assert kept["changed"] is False  # without purge nothing is removed
    assert {prefix + "y", foreign} <= set(netns_list())
    purged = converge("topology", {"topology": smaller, "state_dir": state_dir, "purge": True}, prefix)
    assert purged["summary"] == {"netns": {"delete": 1}}
    assert prefix + "y" not in netns_list()
    assert foreign in netns_list()  # never created by the topology: never removed
    run_module("topology", {"topology": spec, "state_dir": state_dir})
    converge("topology", {"topology": spec, "state": "absent", "state_dir": state_dir}, prefix)
    assert foreign in netns_list()
    assert not {prefix + "x", prefix + "y"} & set(netns_list())


def restore(command: str, path: str, state_dir: str) -> subprocess.CompletedProcess:
    return restore_program(command, path, "--state-dir", state_dir)


def test_restore_program_recreates_after_loss(prefix: str, tmp_path: Any) -> None:
    """Apply, destroy what the kernel holds (as a reboot would), restore: same state read back."""
    spec = small_topology(prefix)
    path, state_dir = save_spec(tmp_path, spec)
    assert restore("check", path, state_dir).returncode == 1
    applied = restore("apply", path, state_dir)
    assert applied.returncode == 0, applied.stderr
    assert restore("check", path, state_dir).returncode == 0
    after_apply = normalised(prefix)
    for ns in (prefix + "a", prefix + "b"):
        run(["ip", "netns", "delete", ns])
    subprocess.run(["rm", "-rf", "/etc/netns/%sb" % prefix], check=True)
    # as after a reboot: the kernel has destroyed the namespaces and the root end of their veth
    deadline = time.monotonic() + 10
    while subprocess.run(["ip", "link", "show", "dev", prefix + "r"], capture_output=True, check=False).returncode == 0:
        assert time.monotonic() < deadline, "the root end outlived its peer's namespace"
        time.sleep(0.02)
    drift = restore("check", path, state_dir)
    assert drift.returncode == 1 and "netns" in drift.stdout
    again = restore("apply", path, state_dir)
    assert again.returncode == 0, again.stderr
    assert normalised(prefix) == after_apply
    assert restore("teardown", path, state_dir).returncode == 0
    assert not {prefix + "a", prefix + "b"} & set(netns_list())


def test_only_changes_need_pyroute2(prefix: str, tmp_path: Any) -> None:
    """pyroute2 is loaded for a run's first change only: with a pyroute2 that cannot be imported,
    check and a no-change apply work, and an apply with something to do fails with nothing changed."""
    spec = small_topology(prefix)
    path, state_dir = save_spec(tmp_path, spec)
    assert restore("apply", path, state_dir).returncode == 0
    shadow = tmp_path / "shadow"
    (shadow / "pyroute2").mkdir(parents=True)
    (shadow / "pyroute2" / "__init__.py").write_text("raise ImportError('No module named pyroute2 (simulated)')\n")
    for command in ("check", "apply"):
        result = restore_program(command, path, "--state-dir", state_dir, python_path=str(shadow))
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    run(["ip", "netns", "delete", prefix + "b"])
    wait_settled([None, prefix + "a"], only=prefix)
    before = snapshot(prefix)
    result = restore_program("apply", path, "--state-dir", state_dir, python_path=str(shadow))
    assert result.returncode == 2 and "pyroute2 cannot be loaded" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(prefix) == before
    assert restore("teardown", path, state_dir).returncode == 0
    assert not os.path.exists("/etc/netns/%sb" % prefix)  # its resolv.conf went, though the namespace was gone


@pytest.mark.parametrize("content,message", [
    ("", "not valid JSON"),
    ('{"name": "x", "namespaces": [{"name": "../etc"}]}', "namespaces[0].name"),
    ('{"name": "x", "namespaces": [', "not valid JSON"),
])
def test_restore_refuses_corrupt_file(prefix: str, tmp_path: Any, content: str, message: str) -> None:
    path = str(tmp_path / "topo.json")
    with open(path, "w") as handle:
        handle.write(content)
    before = snapshot(prefix)
    result = restore("apply", path, str(tmp_path / "state"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert snapshot(prefix) == before


def test_restore_missing_file(tmp_path: Any) -> None:
    result = restore("apply", str(tmp_path / "nope.json"), str(tmp_path / "state"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_foreign_objects_survive_apply_purge_and_teardown(prefix: str, tmp_path: Any) -> None:
    """Objects the topology never declared — in the root and inside a managed namespace — stay."""
    state_dir = str(tmp_path / "state")
    spec = small_topology(prefix)
    run_module("topology", {"topology": spec, "state_dir": state_dir})
    a = prefix + "a"
    # foreign objects inside a managed namespace and in the root namespace
    run(["ip", "netns", "add", prefix + "other"])
    run(["ip", "link", "add", prefix + "fx", "type", "veth", "peer", "name", prefix + "fy"])
    run(["ip", "addr", "add", "10.236.0.1/30", "dev", prefix + "fx"])
    run(["ip", "-n", a, "link", "add", "fa", "type", "veth", "peer", "name", "fb"])
    run(["ip", "-n", a, "addr", "add", "10.236.1.1/24", "dev", "fa"])
    run(["ip", "-n", a, "link", "set", "fa", "up"])
    run(["ip", "-n", a, "route", "add", "10.236.9.0/24", "via", "10.231.1.1"])
    run(["iptables", "-A", "INPUT", "-s", "10.236.0.0/16", "-j", "DROP"], ns=a)
    run(["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "fa", "-j", "MASQUERADE"], ns=a)
    run(["ip", "link", "set", prefix + "fx", "up"])
    run(["ip", "route", "add", "10.236.8.0/24", "via", "10.236.0.2", "dev", prefix + "fx", "onlink"])  # root
    run(["ip", "-n", a, "addr", "add", "10.236.2.1/24", "dev", "r"])  # on a link the topology manages
    foreign = normalised(prefix)
    smaller = copy.deepcopy(spec)
    smaller["namespaces"][0]["iptables"] = []
    smaller["namespaces"][0]["routes"] = []
    for step in ({"topology": spec}, {"topology": smaller, "purge": True}, {"topology": spec}):
        result = run_module("topology", dict(step, state_dir=state_dir))
        assert not result.get("failed"), result
        after = normalised(prefix)
        assert prefix + "other" in after["netns"]
        assert [l for l in after[a]["links"] if l[0] in ("fa", "fb")] == [l for l in foreign[a]["links"] if l[0] in ("fa", "fb")]
        assert any(r[:2] == ("10.236.9.0/24", "10.231.1.1") for r in after[a]["routes"])
        assert "-A INPUT -s 10.236.0.0/16 -j DROP" in after[a]["iptables"]
        assert "-A POSTROUTING -o fa -j MASQUERADE" in after[a]["iptables"]
        assert "10.236.2.1/24" in next(l for l in after[a]["links"] if l[0] == "r")[5]
        assert any(r[:3] == ("10.236.8.0/24", "10.236.0.2", prefix + "fx") for r in after["<root>"]["routes"])
        assert [l for l in after["<root>"]["links"] if l[0].startswith(prefix + "f")] == \
            [l for l in foreign["<root>"]["links"] if l[0].startswith(prefix + "f")]
    run_module("topology", {"topology": spec, "state": "absent", "state_dir": state_dir})
    after = normalised(prefix)
    assert prefix + "other" in after["netns"] and a not in after["netns"]
    assert [l for l in after["<root>"]["links"] if l[0].startswith(prefix + "f")] == \
        [l for l in foreign["<root>"]["links"] if l[0].startswith(prefix + "f")]


def test_macvlan_and_vlan_on_a_root_parent_moved_into_a_namespace(prefix: str, tmp_path: Any) -> None:
    """macvlan/vlan are created on the root parent directly inside their namespace (one request)."""
    parent = prefix + "p"
    run(["ip", "link", "add", parent, "type", "veth", "peer", "name", prefix + "q"])
    links = [{"type": "macvlan", "name": "mv0", "netns": prefix + "m", "parent": parent, "mode": "bridge"}]
    vlan_supported = subprocess.run(["ip", "link", "add", "link", parent, "name", prefix + "vt", "type", "vlan", "id", "9"],
                                    capture_output=True, check=False).returncode == 0
    if vlan_supported:
        run(["ip", "link", "del", prefix + "vt"])
        links.append({"type": "vlan", "name": "v10", "netns": prefix + "m", "parent": parent, "id": 10})
    spec = {"name": prefix + "mv", "namespaces": [{"name": prefix + "m", "addresses": [
        {"dev": "mv0", "address": "10.237.0.2/24"}]}], "links": links}
    state_dir = str(tmp_path / "state")
    converge("topology", {"topology": spec, "state_dir": state_dir}, prefix)
    inside = json.loads(run(["ip", "-n", prefix + "m", "-d", "-j", "link", "show", "mv0"]))[0]
    assert inside["linkinfo"]["info_kind"] == "macvlan" and inside["linkinfo"]["info_data"]["mode"] == "bridge"
    converge("topology", {"topology": spec, "state": "absent", "state_dir": state_dir}, prefix)
    missing = dict(spec, links=[dict(links[0], parent=prefix + "nope")])
    result = run_module("topology", {"topology": missing, "state_dir": state_dir})
    assert result["failed"] and "parent device %snope does not exist" % prefix in result["msg"]
    if not vlan_supported:
        pytest.skip("this kernel has no 802.1q support: vlan part not run")


def test_restore_completes_half_made_namespaces(prefix: str, tmp_path: Any) -> None:
    """Namespaces that already exist but are empty (someone ran `ip netns add`, or an apply died
    early): the routes' gateways are on subnets that the same run adds, and the apply completes."""
    spec = small_topology(prefix)
    path, state_dir = save_spec(tmp_path, spec)
    for ns in (prefix + "a", prefix + "b"):
        run(["ip", "netns", "add", ns])
    applied = restore("apply", path, state_dir)
    assert applied.returncode == 0, applied.stderr
    assert restore("check", path, state_dir).returncode == 0
    run(["ping", "-c", "1", "-W", "2", "10.231.1.1"], ns=prefix + "b")
    assert restore("teardown", path, state_dir).returncode == 0


def test_purge_then_a_new_pair_reuses_an_end_name(prefix: str, tmp_path: Any) -> None:
    """Found by the soak test: `d` in B was paired with `u` in A; the new version pairs `d` with a
    root-namespace end and purges the old pair. Check mode predicts it, apply does it."""
    a, b = prefix + "a", prefix + "b"
    state_dir = str(tmp_path / "state")
    old = {"name": prefix + "re", "namespaces": [{"name": a}, {"name": b, "addresses": [{"dev": "d", "address": "10.231.7.2/30"}]}],
           "links": [{"type": "veth", "name": "u", "netns": a, "peer": "d", "peer_netns": b}]}
    new = {"name": prefix + "re", "namespaces": [{"name": a}, {"name": b, "addresses": [{"dev": "d", "address": "10.231.7.2/30"}]}],
           "links": [{"type": "veth", "name": prefix + "u", "peer": "d", "peer_netns": b}],
           "host": {"addresses": [{"dev": prefix + "u", "address": "10.231.7.1/30"}]}}
    run_module("topology", {"topology": old, "state_dir": state_dir})
    result = converge("topology", {"topology": new, "state_dir": state_dir, "purge": True}, prefix)
    assert result["summary"]["link"]["delete"] == 1
    run(["ping", "-c", "1", "-W", "2", "10.231.7.2"])
    converge("topology", {"topology": new, "state": "absent", "state_dir": state_dir}, prefix)


def test_per_interface_sysctls_of_declared_links_converge(prefix: str, tmp_path: Any) -> None:
    """A sysctl of a link the topology declares (net.ipv4.conf.LINK.x, or with '/' for a name with
    dots) is set once the link exists: check, apply, unchanged, check unchanged, for a new namespace
    and for a new link in a namespace that exists; teardown leaves nothing."""
    a, b = prefix + "a", prefix + "b"
    spec = {
        "name": prefix + "ifsys",
        "namespaces": [
            {"name": a, "sysctls": {"net.ipv4.conf.ab.forwarding": 1, "net.ipv4.ip_forward": 1}},
            {"name": b, "sysctls": {"net/ipv6/conf/ba.1/forwarding": 1, "net/ipv4/neigh/ba.1/ucast_solicit": 5}},
        ],
        "links": [{"type": "veth", "name": "ab", "netns": a, "peer": "ba.1", "peer_netns": b}],
    }
    state_dir = str(tmp_path / "state")
    before = snapshot(prefix)
    applied = converge("topology", {"topology": spec, "state_dir": state_dir}, prefix)
    objects = [c["object"] for c in applied["changes"]]
    assert objects.index("net.ipv4.conf.ab.forwarding in netns %s" % a) > objects.index("ab in netns %s" % a)
    assert run(["sysctl", "-n", "net.ipv4.conf.ab.forwarding"], ns=a).strip() == "1"
    assert run(["cat", "/proc/sys/net/ipv6/conf/ba.1/forwarding"], ns=b).strip() == "1"
    assert run(["cat", "/proc/sys/net/ipv4/neigh/ba.1/ucast_solicit"], ns=b).strip() == "5"
    # a new link in a namespace that exists already
    spec["links"].append({"type": "veth", "name": "ac", "netns": a, "peer": prefix + "c"})
    spec["namespaces"][0]["sysctls"]["net.ipv4.conf.ac.rp_filter"] = 2
    converge("topology", {"topology": spec, "state_dir": state_dir}, prefix)
    assert run(["sysctl", "-n", "net.ipv4.conf.ac.rp_filter"], ns=a).strip() == "2"
    converge("topology", {"topology": spec, "state": "absent", "state_dir": state_dir}, prefix)
    assert snapshot(prefix) == before


def test_namespace_deleted_under_a_process_is_made_again(prefix: str, tmp_path: Any) -> None:
    """`ip netns delete` of a topology's namespace while a process keeps it alive (a service in it):
    its veth peer is out of reach, in a namespace without a name. The next apply deletes the
    topology's own end (found by identity), which destroys the pair, and makes the namespace and the
    pair again; a second apply changes nothing. A foreign veth stranded the same way is refused and
    left as it is."""
    ns = prefix + "s"
    spec = {"name": prefix + "strand",
            "namespaces": [{"name": ns, "addresses": [{"dev": "in0", "address": "10.232.1.2/30"}]}],
            "links": [{"type": "veth", "name": prefix + "o", "peer": "in0", "peer_netns": ns}],
            "host": {"addresses": [{"dev": prefix + "o", "address": "10.232.1.1/30"}]}}
    args = {"topology": spec, "state_dir": str(tmp_path / "state")}
    assert run_module("topology", args)["changed"]
    keeper = os.open("/run/netns/" + ns, os.O_RDONLY)  # what a service in the namespace does
    try:
        old_inode = os.fstat(keeper).st_ino
        run(["ip", "netns", "delete", ns])
        checked = run_module("topology", args, check=True)
        assert checked["changed"] and not checked.get("failed"), checked
        applied = run_module("topology", args)
        assert not applied.get("failed"), applied
        done = [(c["kind"], c["action"], c["object"]) for c in applied["changes"]]
        stranded_end = "%s in root namespace" % (prefix + "o")
        assert done[0] == ("link", "delete", stranded_end), done
        assert {("netns", "create", ns), ("link", "create", stranded_end)} <= set(done), done
        assert [c["object"] for c in applied["changes"]] == [c["object"] for c in checked["changes"]]
        assert os.stat("/run/netns/" + ns).st_ino != old_inode
        run(["ping", "-c", "1", "-W", "2", "10.232.1.2"])
        assert run_module("topology", args)["changed"] is False
    finally:
        os.close(keeper)
    assert not run_module("topology", dict(args, state="absent")).get("failed")

    foreign_ns = prefix + "fx"
    run(["ip", "netns", "add", foreign_ns])
    run(["ip", "link", "add", prefix + "f", "type", "veth", "peer", "name", "fin", "netns", foreign_ns])
    keeper = os.open("/run/netns/" + foreign_ns, os.O_RDONLY)
    try:
        run(["ip", "netns", "delete", foreign_ns])
        other = {"name": prefix + "other", "namespaces": [{"name": foreign_ns}],
                 "links": [{"type": "veth", "name": prefix + "f", "peer": "fin", "peer_netns": foreign_ns}]}
        refused = run_module("topology", {"topology": other, "state_dir": str(tmp_path / "state")})
        assert refused.get("failed") and "namespace without a name" in refused["msg"], refused
        assert foreign_ns not in netns_list()
        run(["ip", "link", "show", "dev", prefix + "f"])  # still there, untouched
    finally:
        os.close(keeper)
        run(["ip", "link", "delete", prefix + "f"], check=False)
