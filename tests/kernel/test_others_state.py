"""Reads never break on state someone else made (issue 15, item 10): iptables rules with comments
iptables-save prints across lines or with quotes, bytes that are no UTF-8, in a managed namespace;
namespaces deleted while netns_info or `linuxnet-netns show` read. Errors that remain name the
namespace."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

from helpers import converge, netns_list, restore_program, run, run_module, save_spec

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel.session import Kernel
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.apply import execute
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.rollback import Journal
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.topology import plan_topology
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology

# Comments made with iptables from argument lists, as someone else might: quotes, a backslash, line
# breaks (one holding lines that look like a COMMIT, a table and a rule), an interface with a line
# break in its name (printed without quotes), a comment iptables prints without quotes.
ODD = [
    ["-m", "comment", "--comment", 'say "hi"'],
    ["-m", "comment", "--comment", "it's"],
    ["-m", "comment", "--comment", "back\\slash"],
    ["-m", "comment", "--comment", "two\nlines"],
    ["-m", "comment", "--comment", "x\nCOMMIT\n*nat\n[0:0] -A INPUT -j DROP\n"],
    ["-i", "a\nb"],
    ["-m", "comment", "--comment", "-h"],
]
SSH = "-p tcp --dport 22 -j ACCEPT"


def add_odd_rules(ns: str, chain: str = "INPUT", extra: Optional[List[List[Any]]] = None) -> None:
    for words in ODD + (extra or []):
        subprocess.run(["ip", "netns", "exec", ns, "iptables", "-A", chain] + words + ["-j", "ACCEPT"], check=True)


def saved(ns: str, tool: str = "iptables-save") -> bytes:
    """The rules as iptables-save prints them (bytes: no decoding, no newline translation)."""
    out = subprocess.run(["ip", "netns", "exec", ns, tool], capture_output=True, check=True).stdout
    return b"\n".join(line for line in out.split(b"\n") if not line.startswith(b"#"))


def rule_block(ns: str) -> bytes:
    """INPUT's rules, the foreign ones as iptables-save prints them (a comment may hold a COMMIT)."""
    text = saved(ns)
    end = text.find(b"\n-A MINE")
    return text[text.index(b"\n-A INPUT"):end if end >= 0 else text.rindex(b"\nCOMMIT")]


def test_a_table_holding_odd_foreign_rules_is_checked_and_changed_around_them(prefix: str) -> None:
    """check and apply of the same table work; the foreign rules stay exactly as they were, in their
    places, through an insertion between declared rules, a policy and a user chain, and absent."""
    ns = prefix + "fw"
    run(["ip", "netns", "add", ns])
    run(["iptables", "-A", "INPUT", "-p", "udp", "-j", "DROP"], ns=ns)
    add_odd_rules(ns)
    foreign = rule_block(ns)
    args = {"netns": ns, "chains": [{"name": "INPUT", "rules": [SSH, "-p tcp --dport 80 -j ACCEPT"]}]}
    converge("netns_iptables", args, prefix)
    assert rule_block(ns) == foreign + (b"\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"
                                        b"\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT")
    args = {"netns": ns, "chains": [
        {"name": "MINE", "rules": ["-m comment --comment 'ours' -j RETURN"]},
        {"name": "INPUT", "policy": "DROP", "rules": [SSH, "-p tcp --dport 443 -j ACCEPT", "-j MINE",
                                                      "-p tcp --dport 80 -j ACCEPT"]}]}
    converge("netns_iptables", args, prefix)
    assert rule_block(ns).startswith(foreign + b"\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
                                     b"-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT\n-A INPUT -j MINE\n")
    assert b":INPUT DROP" in saved(ns)
    reported = run_module("netns_iptables", args, check=True)
    assert reported["changed"] is False
    assert reported["chains"]["INPUT"]["rules"][4] == '-m comment --comment "two\nlines" -j ACCEPT'
    converge("netns_iptables", dict(args, state="absent"), prefix)
    assert rule_block(ns) == foreign
    assert b"-A MINE" not in saved(ns)
    # exclusive: the chain holds exactly the declared rules, the odd ones go too
    converge("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": [SSH], "exclusive": True}]}, prefix)
    assert rule_block(ns) == b"\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"


def test_bytes_that_are_no_utf8_in_a_foreign_rule(prefix: str) -> None:
    ns = prefix + "fw"
    run(["ip", "netns", "add", ns])
    subprocess.run(["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-m", "comment", "--comment",
                    b"caf\xe9", "-j", "ACCEPT"], check=True)
    before = rule_block(ns)
    args = {"netns": ns, "chains": [{"name": "INPUT", "rules": [SSH]}]}
    applied = run_module("netns_iptables", args)
    assert not applied.get("failed") and applied["changed"] is True, applied
    assert rule_block(ns) == before + b"\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"
    assert run_module("netns_iptables", args)["changed"] is False
    info = run_module("netns_info", {"names": [ns]})
    assert not info.get("failed"), info


def test_restore_program_checks_applies_and_shows_a_namespace_with_odd_rules(prefix: str, tmp_path: Any) -> None:
    ns = prefix + "a"
    spec = {"name": prefix + "odd", "namespaces": [{"name": ns, "iptables": [
        {"table": "filter", "chains": [{"name": "INPUT", "rules": [SSH]}]}]}]}
    path, state = save_spec(tmp_path, spec)
    assert restore_program("apply", path, "--state-dir", state).returncode == 0
    add_odd_rules(ns)
    foreign = rule_block(ns)
    checked = restore_program("check", path, "--state-dir", state)
    assert checked.returncode == 0, checked.stderr
    spec["namespaces"][0]["iptables"][0]["chains"][0]["rules"].append("-p tcp --dport 80 -j ACCEPT")
    path, state = save_spec(tmp_path, spec)
    checked = restore_program("check", path, "--state-dir", state)
    assert checked.returncode == 1, checked.stderr
    assert "iptables ipv4 filter in netns %s" % ns in checked.stdout
    applied = restore_program("apply", path, "--state-dir", state)
    assert applied.returncode == 0, applied.stderr
    ssh = b"\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"
    assert foreign.startswith(ssh)  # the new rule goes right after it, before the foreign ones
    assert rule_block(ns) == ssh + b"\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT" + foreign[len(ssh):]
    assert restore_program("check", path, "--state-dir", state).returncode == 0
    shown = restore_program("show", path)
    assert shown.returncode == 0, shown.stderr
    rules = json.loads(shown.stdout)["namespaces"][0]["iptables"]["ipv4"]["filter"]["INPUT"]["rules"]
    assert '-m comment --comment "x\nCOMMIT\n*nat\n[0:0] -A INPUT -j DROP\n" -j ACCEPT' in rules
    assert restore_program("teardown", path, "--state-dir", state).returncode == 0
    assert ns not in netns_list()


def test_iptables_save_output_that_cannot_be_read_is_an_error_naming_the_namespace(prefix: str, tmp_path: Any) -> None:
    ns = prefix + "a"
    spec = {"name": prefix + "odd", "namespaces": [{"name": ns, "iptables": [
        {"table": "filter", "chains": [{"name": "INPUT", "rules": [SSH]}]}]}]}
    path, state = save_spec(tmp_path, spec)
    assert restore_program("apply", path, "--state-dir", state).returncode == 0
    shim = tmp_path / "bin"
    shim.mkdir()
    fake = shim / "iptables-save"
    # reads (-c) get garbage; the canonicalisation of the declared rules (-t) the real thing
    fake.write_text("#!/bin/sh\n[ \"$1\" = -c ] && { printf 'garbage\\n'; exit 0; }\nexec %s \"$@\"\n"
                    % shutil.which("iptables-save"))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": "%s:%s" % (shim, os.environ["PATH"])}
    os.unlink(os.path.join(state, spec["name"] + ".tables.json"))  # so that the tables are read
    checked = restore_program("check", path, "--state-dir", state, extra_env=env)
    assert checked.returncode == 2
    assert checked.stderr == "linuxnet-netns: iptables-save in netns %s: unexpected line outside a table: 'garbage'\n" % ns
    assert restore_program("teardown", path, "--state-dir", state).returncode == 0


def test_a_rollback_puts_such_a_table_back_as_it_was(prefix: str) -> None:
    ns = prefix + "fw"
    run(["ip", "netns", "add", ns])
    add_odd_rules(ns)
    before = saved(ns)
    spec = {"name": prefix + "rb", "namespaces": [{"name": ns, "loopback": "unmanaged", "iptables": [{"table": "filter", "chains": [
        {"name": "MINE", "rules": ["-j RETURN"]},
        {"name": "INPUT", "policy": "DROP", "rules": [SSH, "-j MINE"]}]}]}]}
    journal = Journal()
    with Kernel() as kernel:
        changes = plan_topology(kernel, parse_topology(spec))
        assert [c.kind for c in changes] == ["iptables"]
        execute(kernel, changes, check_mode=False, journal=journal)
        assert b"-A INPUT -j MINE" in saved(ns)
        undone, problems = journal.roll_back(kernel)
    assert problems == [] and len(undone) == 1
    assert saved(ns) == before


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft to make what iptables cannot show")
def test_chains_made_with_nft_that_iptables_does_not_show_survive_a_change_of_their_table(prefix: str) -> None:
    """iptables-save leaves out a base chain of another hook that nft added to the nat table (and
    says so in a comment): a whole restore of that table would delete it with its rules."""
    ns = prefix + "fw"
    run(["ip", "netns", "add", ns])
    for command in (["add", "table", "ip", "nat"],
                    ["add", "chain", "ip", "nat", "theirs", "{ type nat hook prerouting priority -100; }"],
                    ["add", "rule", "ip", "nat", "theirs", "ip", "saddr", "192.0.2.7", "counter", "accept"]):
        run(["nft"] + command, ns=ns)
    assert "contains incompatible base-chains" in run(["iptables-save", "-t", "nat"], ns=ns)
    args = {"netns": ns, "table": "nat", "chains": [{"name": "PREROUTING", "rules": ["-s 10.0.0.1/32 -j ACCEPT"]}]}
    converge("netns_iptables", args, prefix)
    theirs = run(["nft", "list", "chain", "ip", "nat", "theirs"], ns=ns)
    assert "ip saddr 192.0.2.7" in theirs
    assert "-A PREROUTING -s 10.0.0.1/32 -j ACCEPT" in run(["iptables-save", "-t", "nat"], ns=ns)
    converge("netns_iptables", dict(args, state="absent"), prefix)
    assert run(["nft", "list", "chain", "ip", "nat", "theirs"], ns=ns) == theirs


# -- namespaces deleted while they are read -------------------------------------------------------
class Deleter(threading.Thread):
    """Deletes the namespaces ``names`` one after another, a few milliseconds apart."""

    def __init__(self, names: List[str]) -> None:
        super().__init__(daemon=True)
        self.names = list(names)

    def run(self) -> None:
        for name in self.names:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
            time.sleep(0.01)


def doomed_namespaces(prefix: str, count: int) -> List[str]:
    names = ["%sd%d" % (prefix, i) for i in range(count)]
    for name in names:
        run(["ip", "netns", "add", name])
        run(["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"], ns=name)
    return names


def consistent(result: Dict[str, Any], asked: Optional[List[str]]) -> None:
    names = [entry["name"] for entry in result["namespaces"]]
    assert len(names) == len(set(names))
    if asked is not None:
        assert sorted(names + result["missing"]) == sorted(asked)


def test_netns_info_while_namespaces_are_deleted(prefix: str) -> None:
    """Every run succeeds; a namespace deleted while it runs is either read whole or not in the
    result (in ``missing`` when it was asked for). Asked for all, and asked for some of them."""
    stay = prefix + "s"
    run(["ip", "netns", "add", stay])
    for rounds, asked in ((6, None), (6, "some")):
        doomed = doomed_namespaces(prefix, 24)
        names = None if asked is None else [stay] + doomed[::2]
        deleter = Deleter(doomed)
        deleter.start()
        for _round in range(rounds):
            result = run_module("netns_info", {} if names is None else {"names": names})
            assert not result.get("failed"), result
            consistent(result, names)
            assert stay in [entry["name"] for entry in result["namespaces"]]
            if not deleter.is_alive():
                break
        deleter.join()


def test_show_while_namespaces_are_deleted(prefix: str) -> None:
    stay = prefix + "s"
    run(["ip", "netns", "add", stay])
    doomed = doomed_namespaces(prefix, 24)
    deleter = Deleter(doomed)
    deleter.start()
    for _round in range(6):
        shown = restore_program("show")
        assert shown.returncode == 0 and shown.stderr == "", shown.stderr
        result = json.loads(shown.stdout)
        consistent(result, None)
        assert stay in [entry["name"] for entry in result["namespaces"]]
        if not deleter.is_alive():
            break
    deleter.join()


def test_a_teardown_looking_for_veth_peers_skips_a_namespace_deleted_meanwhile(prefix: str, tmp_path: Any) -> None:
    """Finding a veth's far end walks every named namespace on the host; one someone else deletes
    while the run looks (listed, then gone) is passed over, never an error of the run."""
    from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds import namespace, veth
    from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.link import links

    a, others = prefix + "a", [prefix + "0%d" % i for i in range(3)]  # sorted before b: looked at first
    spec = {"name": prefix + "gone", "namespaces": [{"name": a}, {"name": prefix + "b"}],
            "links": [{"type": "veth", "name": "ab", "netns": a, "peer": "ba", "peer_netns": prefix + "b"}]}
    assert not run_module("topology", {"topology": spec, "state_dir": str(tmp_path / "state")}).get("failed")
    for name in others:
        run(["ip", "netns", "add", name])
    with Kernel() as kernel:
        assert set(others) <= kernel.namespaces()  # listed
        for name in others:
            run(["ip", "netns", "delete", name])  # and gone before they are looked at
        found = veth.linked(kernel, a, links(kernel, a)["ab"], [])
        assert found is not None and found[0] == prefix + "b" and found[1].name == "ba"
        assert [ns for ns, _index in namespace._veth_peers_outside(kernel, a)] == [prefix + "b"]
    torn = run_module("topology", {"topology": spec, "state": "absent", "state_dir": str(tmp_path / "state")})
    assert not torn.get("failed"), torn
