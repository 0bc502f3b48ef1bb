"""Policy routing rules (``rules``) in a namespace and in the host section on the real kernel: the
check → apply → again unchanged → check cycle, a packet that reaches its destination only through
a rule's table, foreign rules left alone, a colliding rule made to match, purge of what the spec
no longer declares, the restore program's check reporting a rule's drift, and teardown leaving
nothing (the kernel's default rules untouched throughout)."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any, Dict, List

from helpers import converge, difference, leftovers, restore_program, run, run_module, save_spec, snapshot

TABLE = 100


def rule_topology(prefix: str) -> Dict[str, Any]:
    """C reaches S's loopback address 10.240.9.1 only from its own 10.240.3.1: the route to it is in
    table 100, which a rule ``from 10.240.3.0/24`` selects (the main table has none)."""
    c, s = prefix + "c", prefix + "s"
    return {
        "name": prefix + "rules",
        "namespaces": [
            {"name": c,
             "addresses": [{"dev": "cs", "address": "10.240.1.2/30"}, {"dev": "lo", "address": "10.240.3.1/32"},
                           {"dev": "cs", "address": "fd40:1::2/64", "nodad": True}],
             "routes": [{"dst": "10.240.9.0/24", "via": "10.240.1.1", "table": TABLE},
                        {"dst": "fd40:9::/64", "via": "fd40:1::1", "table": TABLE}],
             "rules": [{"priority": 1000, "from": "10.240.3.0/24", "table": TABLE},
                       {"priority": 1100, "from": "fd40:3::/64", "table": TABLE},
                       {"priority": 1200, "fwmark": "0x1", "table": TABLE},
                       {"priority": 1300, "iif": "cs", "to": "10.240.4.0/24", "table": "main"},
                       {"priority": 1400, "family": "inet6", "fwmark": 16, "fwmask": "0xf0", "oif": "cs",
                        "table": 4242}]},
            {"name": s,
             "addresses": [{"dev": "sc", "address": "10.240.1.1/30"}, {"dev": "lo", "address": "10.240.9.1/32"},
                           {"dev": "sc", "address": "fd40:1::1/64", "nodad": True}],
             "routes": [{"dst": "10.240.3.0/24", "via": "10.240.1.2"}]},
        ],
        "links": [{"type": "veth", "name": "cs", "netns": c, "peer": "sc", "peer_netns": s}],
        "host": {"rules": [{"priority": 1500, "from": "10.240.77.0/24", "table": 177}]},
    }


def rules_in(ns: Any, family: str = "-4") -> List[Dict[str, Any]]:
    out = run(["ip"] + (["-n", ns] if ns else []) + ["-j", family, "rule", "show"])
    return json.loads(out) if out.strip() else []


def reaches(ns: str, *args: str) -> bool:
    """Whether one ping from ``ns`` is answered (its exit status, not its text)."""
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2"] + list(args),
                          capture_output=True, check=False).returncode == 0


def test_rules_cycle_a_packet_takes_the_rules_table_and_teardown_leaves_nothing(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    spec = rule_topology(prefix)
    before = snapshot(prefix)
    defaults = rules_in(None) + rules_in(None, "-6")
    applied = converge("topology", {"topology": spec, "state_dir": state_dir}, prefix)
    assert applied["summary"]["rule"] == {"create": 6}
    c = prefix + "c"
    priorities = {r["priority"]: r for r in rules_in(c)}
    assert priorities[1000]["src"] == "10.240.3.0" and priorities[1000]["srclen"] == 24
    assert priorities[1000]["table"] == str(TABLE)
    assert priorities[1200]["fwmark"] == "0x1" and priorities[1300]["iif"] == "cs"
    v6 = {r["priority"]: r for r in rules_in(c, "-6")}
    assert v6[1400]["fwmark"] == "0x10" and v6[1400]["fwmask"] == "0xf0" and v6[1400]["table"] == "4242"
    assert {0, 32766, 32767} <= set(priorities)  # the kernel's own, untouched
    assert any(r["priority"] == 1500 and r["table"] == "177" for r in rules_in(None))
    assert reaches(c, "-I", "10.240.3.1", "10.240.9.1")  # through table 100, selected by the rule
    assert not reaches(c, "10.240.9.1")  # from 10.240.1.2 the main table has no route there
    removed = run_module("topology", {"topology": spec, "state": "absent", "state_dir": state_dir})
    assert not removed.get("failed"), removed
    assert removed["summary"]["rule"] == {"delete": 1}  # the host's; C's go with their namespace
    assert rules_in(None) + rules_in(None, "-6") == defaults
    after = snapshot(prefix)
    assert after == before, difference(before, after)
    assert leftovers(prefix) == []


def test_foreign_rules_stay_a_colliding_rule_is_made_to_match_and_purge_removes_only_ours(prefix: str,
                                                                                          tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    spec = rule_topology(prefix)
    assert not run_module("topology", {"topology": spec, "state_dir": state_dir}).get("failed")
    c = prefix + "c"
    # foreign: another priority, the same key with a selector the spec does not use, one in the root
    run(["ip", "-n", c, "rule", "add", "priority", "2000", "from", "10.240.5.0/24", "table", "50"])
    run(["ip", "-n", c, "rule", "add", "priority", "1000", "from", "10.240.3.0/24", "ipproto", "tcp", "table", "56"])
    run(["ip", "rule", "add", "priority", "1501", "from", "10.240.78.0/24", "table", "178"])
    # colliding: the declared key pointing at another table
    run(["ip", "-n", c, "rule", "del", "priority", "1000", "from", "10.240.3.0/24", "table", str(TABLE)])
    run(["ip", "-n", c, "rule", "add", "priority", "1000", "from", "10.240.3.0/24", "table", "55"])
    # ahead of a declared rule in the kernel's list, at its priority and table, selecting more: the
    # kernel would take it for the declared one both when adding that (EEXIST) and when deleting it
    run(["ip", "-n", c, "rule", "del", "priority", "1200", "fwmark", "0x1", "table", str(TABLE)])
    run(["ip", "-n", c, "rule", "add", "priority", "1200", "from", "10.240.6.0/24", "fwmark", "0x1", "table", str(TABLE)])
    assert not reaches(c, "-I", "10.240.3.1", "10.240.9.1")
    checked = run_module("topology", {"topology": spec, "state_dir": state_dir}, check=True)
    assert checked["changed"] and sorted((x["action"], x["object"], (x["before"] or {}).get("table"), x["after"]["table"])
                                         for x in checked["changes"]) == [
        ("create", "inet priority 1200 fwmark 0x1/0xffffffff in netns %s" % c, None, TABLE),
        ("update", "inet priority 1000 from 10.240.3.0/24 in netns %s" % c, 55, TABLE)], checked["changes"]
    assert "rule inet priority 1000 from 10.240.3.0/24 in netns %s" % c in checked["diff"]["after"]
    fixed = run_module("topology", {"topology": spec, "state_dir": state_dir})
    assert fixed["changed"] and fixed["summary"] == {"rule": {"update": 1, "create": 1}}, fixed
    assert reaches(c, "-I", "10.240.3.1", "10.240.9.1")
    smaller = copy.deepcopy(spec)
    del smaller["namespaces"][0]["rules"][2]  # priority 1200
    smaller["host"] = {}
    purged = run_module("topology", {"topology": smaller, "purge": True, "state_dir": state_dir})
    assert not purged.get("failed"), purged
    assert sorted(x["object"] for x in purged["changes"]) == sorted([
        "inet priority 1200 fwmark 0x1/0xffffffff in netns %s" % c, "inet priority 1500 from 10.240.77.0/24 in root namespace"])
    assert run_module("topology", {"topology": smaller, "state_dir": state_dir})["changed"] is False
    kept = rules_in(c)
    assert any(r["priority"] == 2000 and r["table"] == "50" for r in kept)
    assert any(r["priority"] == 1000 and r.get("ipproto") == "tcp" and r["table"] == "56" for r in kept)
    assert [(r.get("src"), r.get("fwmark")) for r in kept if r["priority"] == 1200] == [("10.240.6.0", "0x1")]
    assert any(r["priority"] == 1501 for r in rules_in(None)) and not any(r["priority"] == 1500 for r in rules_in(None))
    assert not run_module("topology", {"topology": smaller, "state": "absent", "state_dir": state_dir}).get("failed")
    assert any(r["priority"] == 1501 for r in rules_in(None))  # not ours: stays after teardown
    run(["ip", "rule", "del", "priority", "1501", "from", "10.240.78.0/24", "table", "178"])
    assert leftovers(prefix) == []


def test_the_restore_program_reports_and_repairs_a_rules_drift(prefix: str, tmp_path: Any) -> None:
    path, state = save_spec(tmp_path, rule_topology(prefix))
    assert restore_program("apply", path, "--state-dir", state).returncode == 0
    assert restore_program("check", path, "--state-dir", state).returncode == 0
    c = prefix + "c"
    run(["ip", "-n", c, "-6", "rule", "del", "priority", "1100"])
    run(["ip", "rule", "del", "priority", "1500"])
    checked = restore_program("check", path, "--state-dir", state)
    assert checked.returncode == 1, (checked.stdout, checked.stderr)
    lines = checked.stdout.splitlines()
    assert "create  rule     inet6 priority 1100 from fd40:3::/64 in netns %s" % c in lines
    assert "create  rule     inet priority 1500 from 10.240.77.0/24 in root namespace" in lines
    assert lines[-1] == '2 change(s) differ: {"rule": {"create": 2}}'
    assert restore_program("apply", path, "--state-dir", state).returncode == 0
    assert restore_program("check", path, "--state-dir", state).returncode == 0
    assert any(r["priority"] == 1100 for r in rules_in(c, "-6"))
    assert restore_program("teardown", path, "--state-dir", state).returncode == 0
    assert not any(r["priority"] == 1500 for r in rules_in(None))
    assert leftovers(prefix) == []
