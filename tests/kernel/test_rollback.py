"""Rollback on the real kernel: a kernel refusal part-way through an apply leaves the host as before
the run with rollback (the module's and role's default), and exactly as far as it got without,
reported change by change."""

from __future__ import annotations

import copy
from typing import Any, Dict

import pytest
from helpers import difference, netns_list, run, run_module, snapshot, wait_settled

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds import iptables
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel.session import Kernel
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.apply import execute
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.rollback import Journal
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.topology import plan_teardown, plan_topology
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology


def first_version(prefix: str) -> Dict[str, Any]:
    a = prefix + "a"
    return {
        "name": prefix + "rb",
        "namespaces": [{"name": a, "sysctls": {"net.ipv4.ip_forward": 0},
                        "addresses": [{"dev": "ab", "address": "10.236.1.1/24"}],
                        "routes": [{"dst": "10.236.9.0/24", "via": "10.236.1.2"}],
                        "rules": [{"priority": 1000, "from": "10.236.1.0/25", "table": 100},
                                  {"priority": 1001, "fwmark": "0x1", "table": 100}],
                        "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]}]}],
        "links": [{"type": "veth", "name": "ab", "netns": a, "peer": "ba", "peer_netns": a},
                  {"type": "veth", "name": "p0", "netns": a, "peer": "q0", "peer_netns": a},
                  # a bridge that keeps a port (one without ports has carrier only until its first)
                  {"type": "bridge", "name": "br0", "netns": a, "ports": ["p0"]}],
    }


def second_version(prefix: str) -> Dict[str, Any]:
    """Changes of every kind against the first version: sysctl, DNS, a new namespace, links, an MTU,
    a bridge port, an address replaced and added, a route re-pointed, a policy rule re-pointed and
    added, iptables rules."""
    spec = first_version(prefix)
    a, b = prefix + "a", prefix + "b"
    ns = spec["namespaces"][0]
    ns["sysctls"] = {"net.ipv4.ip_forward": 1}
    ns["nameservers"] = ["192.0.2.53"]
    ns["addresses"] = [{"dev": "ab", "address": "10.236.1.1/25"}, {"dev": "ba", "address": "10.236.1.2/25"}]
    ns["routes"] = [{"dst": "10.236.9.0/24", "via": "10.236.1.3"},  # same identity, another gateway
                    {"dst": "10.236.8.0/24", "via": "10.236.1.2"}]
    ns["rules"] = [{"priority": 1000, "from": "10.236.1.0/25", "table": 200},  # same key, another table
                   ns["rules"][1], {"priority": 1002, "family": "inet6", "to": "fd36:9::/64", "table": 100}]
    ns["iptables"][0]["chains"][0]["rules"].append("-p udp --dport 53 -j ACCEPT")
    spec["links"][0]["mtu"] = 1400
    spec["links"][2]["ports"] = ["p0", "ba"]
    spec["namespaces"].append({"name": b, "sysctls": {"net.ipv6.conf.all.disable_ipv6": 1},
                               "addresses": [{"dev": "bx", "address": "10.236.2.2/24"}]})
    spec["links"].append({"type": "veth", "name": "xb", "netns": a, "peer": "bx", "peer_netns": b})
    return spec


def settled_snapshot(prefix: str) -> Dict[str, Any]:
    wait_settled([None, prefix + "a", prefix + "b"], only=prefix)
    return snapshot(prefix)


def test_journal_reverses_changes_of_every_kind(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    assert not run_module("topology", {"topology": first_version(prefix), "state_dir": state_dir}).get("failed")
    before = settled_snapshot(prefix)
    journal = Journal()
    with Kernel() as kernel:
        changes = plan_topology(kernel, parse_topology(second_version(prefix)))
        kinds = {(c.kind, c.action) for c in changes}
        assert {("sysctl", "update"), ("dns", "create"), ("netns", "create"), ("link", "create"), ("link", "update"),
                ("address", "replace"), ("address", "create"), ("route", "update"), ("route", "create"),
                ("rule", "update"), ("rule", "create"), ("iptables", "update")} <= kinds, kinds
        execute(kernel, changes, check_mode=False, journal=journal)
        kernel.cache.invalidate()
        assert not plan_topology(kernel, parse_topology(second_version(prefix)))  # it did land
        undone, problems = journal.roll_back(kernel)
    assert problems == [] and len(undone) == len(changes)
    after = settled_snapshot(prefix)
    assert after == before, difference(before, after)
    # deletions too: without a record a teardown removes only the declared objects inside the namespace
    journal = Journal()
    with Kernel() as kernel:
        changes = plan_teardown(kernel, parse_topology(first_version(prefix)))
        assert {("rule", "delete"), ("route", "delete"), ("address", "delete")} <= {(c.kind, c.action) for c in changes}
        execute(kernel, changes, check_mode=False, journal=journal)
        undone, problems = journal.roll_back(kernel)
    assert problems == [] and len(undone) == len(changes)
    after = settled_snapshot(prefix)
    assert after == before, difference(before, after)


def refusing_version(prefix: str) -> Dict[str, Any]:
    """The second version plus an IPv6 address in a namespace where IPv6 is disabled: the kernel
    refuses it (EACCES) after the namespaces, links and IPv4 addresses were made."""
    spec = second_version(prefix)
    spec["namespaces"][1]["sysctls"]["net.ipv6.conf.default.disable_ipv6"] = 1
    spec["namespaces"][1]["addresses"].append({"dev": "bx", "address": "fd36::2/64", "nodad": True})
    return spec


def test_kernel_refusal_rolls_back_to_the_state_before(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    assert not run_module("topology", {"topology": first_version(prefix), "state_dir": state_dir}).get("failed")
    before = settled_snapshot(prefix)
    result = run_module("topology", {"topology": refusing_version(prefix), "state_dir": state_dir})
    assert result.get("failed") is True
    assert "fd36::2/64" in result["msg"] and "rolled back the" in result["msg"] and "NOT" not in result["msg"], result["msg"]
    assert result["errno"] == 13
    after = settled_snapshot(prefix)
    assert after == before, difference(before, after)
    # and the next run without the bad address converges as usual
    assert not run_module("topology", {"topology": second_version(prefix), "state_dir": state_dir}).get("failed")
    run_module("topology", {"topology": second_version(prefix), "state": "absent", "state_dir": state_dir})


def test_without_rollback_the_error_lists_what_was_done(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    result = run_module("topology", {"topology": refusing_version(prefix), "state_dir": state_dir, "rollback": False})
    assert result.get("failed") is True
    assert "left as far as this run got" in result["msg"] and "create netns %sb" % prefix in result["msg"]
    assert prefix + "b" in run(["ip", "netns", "list"])  # kept
    spec = copy.deepcopy(refusing_version(prefix))
    spec["namespaces"][1]["addresses"].pop()
    run_module("topology", {"topology": spec, "state": "absent", "state_dir": state_dir})


# Stands in for iptables-restore: refuses inside the namespace named by its first argument and
# hands every other call to the real program.
REFUSING_RESTORE = """#!/usr/bin/env python3
import os, sys
if os.stat("/proc/self/ns/net").st_ino == os.stat("/run/netns/" + os.environ["REFUSE_IN"]).st_ino:
    sys.exit("refused here on purpose")
os.execvp("iptables-restore", ["iptables-restore"] + sys.argv[1:])
"""


def test_a_refused_table_among_many_restored_at_once(prefix: str, tmp_path: Any, monkeypatch: Any) -> None:
    """Tables of several namespaces are restored several at a time: when one is refused, those that
    were restored are in the journal (and only those), nothing new starts, and rollback undoes them."""
    names = ["%st%d" % (prefix, i) for i in range(12)]
    rule = {"table": "filter", "chains": [{"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]}
    spec = {"name": prefix + "many", "namespaces": [{"name": name, "iptables": [rule]} for name in names]}
    script = tmp_path / "refusing-restore"
    script.write_text(REFUSING_RESTORE)
    script.chmod(0o755)
    monkeypatch.setitem(iptables.TOOLS, "ipv4", ("iptables-save", str(script)))
    monkeypatch.setenv("REFUSE_IN", names[1])
    journal = Journal()
    with Kernel() as kernel:
        changes = plan_topology(kernel, parse_topology(spec))
        with pytest.raises(NetnsError, match="refused here on purpose") as failure:
            execute(kernel, changes, check_mode=False, journal=journal)
        assert failure.value.obj == "netns " + names[1]
        restored = [change.key for change, _undo in journal.entries if change.kind == "iptables"]
        assert restored and "ipv4 filter in netns %s" % names[1] not in restored
        assert restored == sorted(restored, key=lambda key: names.index(key.rsplit(" ", 1)[1]))
        with_rule = [name for name in names if "--dport 22" in run(["iptables-save", "-t", "filter"], ns=name)]
        assert ["ipv4 filter in netns " + name for name in with_rule] == restored
        assert len(restored) <= iptables.PARALLEL_PROCESSES  # nothing started after the refusal
        undone, problems = journal.roll_back(kernel)
    assert problems == [] and len(undone) == len(journal.entries)
    assert [name for name in names if name in netns_list()] == []
