"""The boot restores what it can, and the restore program's exit codes (issue 15, items 11 and 12):
rules that would make iptables print its help are refused as input; without iptables a boot
restores every namespace, link, address and route and fails naming the missing programs; running
out of descriptors is one line; ``check`` exits 1 for drift only, 2 for every error."""

from __future__ import annotations

import os
import shutil
import stat
from typing import Any, Dict

import pytest

from helpers import leftovers, netns_list, normalised, restore_program, run, run_module, save_spec, snapshot

SSH = "-p tcp --dport 22 -j ACCEPT"


# -- words that make iptables print its help (item 12) ------------------------------------------
@pytest.mark.parametrize("rule", ["-h", "-j ACCEPT -V", "-p tcp --help", "-vh -j ACCEPT", "-6 -j ACCEPT"])
def test_the_module_refuses_rules_iptables_would_not_take(prefix: str, rule: str) -> None:
    ns = prefix + "fw"
    run(["ip", "netns", "add", ns])
    before = snapshot(prefix)
    result = run_module("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": [SSH, rule]}]})
    assert result["failed"] and result["object"] == "netns_iptables.chains[0].rules[1]", result
    assert "instead of taking the rule" in result["msg"], result
    assert snapshot(prefix) == before


def topology(prefix: str, count: int = 2, rules: Any = None) -> Dict[str, Any]:
    """``count`` namespaces, each with a veth to the root, addresses, a route, IPv4 and IPv6 rules."""
    namespaces, links, host = [], [], []
    for i in range(count):
        ns = "%sn%d" % (prefix, i)
        namespaces.append({
            "name": ns,
            "addresses": [{"dev": "in", "address": "10.238.%d.2/30" % i}],
            "routes": [{"dst": "default", "via": "10.238.%d.1" % i}],
            "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": rules or [SSH]}]},
                         {"table": "filter", "ip_version": "ipv6",
                          "chains": [{"name": "INPUT", "rules": ["-p ipv6-icmp -j ACCEPT"]}]}]})
        links.append({"type": "veth", "name": "%so%d" % (prefix, i), "peer": "in", "peer_netns": ns})
        host.append({"dev": "%so%d" % (prefix, i), "address": "10.238.%d.1/30" % i})
    return {"name": prefix + "boot", "namespaces": namespaces, "links": links, "host": {"addresses": host}}


def test_the_restore_program_refuses_them_in_a_topology(prefix: str, tmp_path: Any) -> None:
    path, state = save_spec(tmp_path, topology(prefix, 1, [SSH, "-j ACCEPT --help"]))
    for command in ("apply", "check"):
        done = restore_program(command, path, "--state-dir", state)
        assert done.returncode == 2
        assert done.stderr.startswith("linuxnet-netns: namespaces[0].iptables[0].chains[0].rules[1]: '--help' makes "
                                      "iptables print its help instead of taking the rule")
    assert leftovers(prefix) == []


def shim(tmp_path: Any, name: str, script: str) -> Dict[str, str]:
    """A directory first in PATH with ``name`` running ``script`` (sh)."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    program = directory / name
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return {"PATH": "%s:%s" % (directory, os.environ["PATH"])}


def test_a_rule_iptables_skips_without_an_error_is_found_and_named(prefix: str, tmp_path: Any) -> None:
    """Whatever makes iptables-restore succeed without taking a rule (here: one that prints its help
    for any rule with 'DROP'), the declared rule is named, not an IndexError."""
    restore = shutil.which("iptables-restore")
    env = shim(tmp_path, "iptables-restore", 'input=$(cat)\ncase "$input" in *DROP*) echo "Usage: help"; exit 0;; esac\n'
                                               'printf "%%s\\n" "$input" | exec %s "$@"\n' % restore)
    path, state = save_spec(tmp_path, topology(prefix, 1, [SSH, "-p udp -j DROP"]))
    checked = restore_program("check", path, "--state-dir", state, extra_env=env)
    assert checked.returncode == 2
    assert checked.stderr == ("linuxnet-netns: namespaces[0].iptables[0].chains[0].rules[1]: iptables does not take "
                              "rule '-p udp -j DROP' (it printed 'Usage: help')\n")


# -- exit codes (item 12) --------------------------------------------------------------------------
BROKEN_LISTING = '''
import os
real_listdir = os.listdir

def listdir(path="."):
    if path == "/run/netns":
        raise RuntimeError("injected")
    return real_listdir(path)

os.listdir = listdir
'''


@pytest.mark.parametrize("command", ["check", "apply", "teardown", "show"])
def test_an_unexpected_exception_is_one_line_and_exit_2(prefix: str, tmp_path: Any, command: str) -> None:
    """check's exit 1 means drift: a traceback (Python's exit 1) must never look like one."""
    path, state = save_spec(tmp_path, topology(prefix, 1))
    injected = tmp_path / "inject"
    injected.mkdir()
    (injected / "sitecustomize.py").write_text(BROKEN_LISTING)
    done = restore_program(command, path, "--state-dir", state, python_path=str(injected))
    assert done.returncode == 2
    assert done.stderr.startswith("linuxnet-netns: unexpected RuntimeError: injected (at ")
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert leftovers(prefix) == []
