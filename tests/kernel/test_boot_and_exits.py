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


# -- iptables missing at boot (item 11) ------------------------------------------------------------
def without_iptables(tmp_path: Any) -> Dict[str, str]:
    """A PATH in which iptables-save and iptables-restore cannot be found; ip6tables-save and
    ip6tables-restore can (the only programs the engine starts)."""
    directory = tmp_path / "ip6tables-only"
    directory.mkdir()
    for tool in ("ip6tables-save", "ip6tables-restore"):
        os.symlink(shutil.which(tool), str(directory / tool))
    return {"PATH": str(directory)}


def without_rules(state: Dict[str, Any]) -> Dict[str, Any]:
    return {key: ({k: v for k, v in value.items() if k != "iptables"} if isinstance(value, dict) else value)
            for key, value in state.items()}


def test_without_iptables_a_boot_restores_everything_else_and_fails_naming_it(prefix: str, tmp_path: Any) -> None:
    spec = topology(prefix, 2)
    path, state = save_spec(tmp_path, spec)
    env = without_iptables(tmp_path)
    applied = restore_program("apply", path, "--state-dir", state, extra_env=env)
    assert applied.returncode == 2, applied.stderr
    assert applied.stderr == ("linuxnet-netns: iptables-restore, iptables-save not found; applied everything else, "
                              "skipped the iptables rules of: ipv4 filter in netns %sn0, ipv4 filter in netns %sn1\n"
                              % (prefix, prefix))
    assert {prefix + "n0", prefix + "n1"} <= set(netns_list())
    run(["ping", "-c", "1", "-W", "2", "10.238.1.2"])  # links, addresses, routes: all there
    partial = normalised(prefix)
    for ns in (prefix + "n0", prefix + "n1"):
        assert "-A INPUT -p ipv6-icmp -j ACCEPT" in run(["ip6tables-save"], ns=ns)  # the other family's rules too
        assert "--dport 22" not in run(["iptables-save"], ns=ns)
    checked = restore_program("check", path, "--state-dir", state, extra_env=env)
    assert checked.returncode == 2
    assert checked.stderr.startswith("linuxnet-netns: iptables-restore, iptables-save not found; checked everything "
                                     "else, skipped the iptables rules of: ipv4 filter in netns %sn0" % prefix)
    assert "0 change(s) differ" in checked.stdout
    # with the programs back: the rules are what differs, and apply converges them too
    checked = restore_program("check", path, "--state-dir", state)
    assert checked.returncode == 1 and "iptables ipv4 filter in netns %sn0" % prefix in checked.stdout
    assert restore_program("apply", path, "--state-dir", state).returncode == 0
    assert restore_program("check", path, "--state-dir", state).returncode == 0
    assert without_rules(normalised(prefix)) == without_rules(partial)
    assert "--dport 22" in run(["iptables-save"], ns=prefix + "n1")
    assert restore_program("teardown", path, "--state-dir", state).returncode == 0
    assert leftovers(prefix) == []


# -- descriptors (item 12) -------------------------------------------------------------------------
def test_running_out_of_descriptors_is_one_line_without_pythons_noise(prefix: str, tmp_path: Any) -> None:
    """Under each hard limit of a range that spans where the run makes its first veth, with
    pyroute2 0.9 its asyncio event loop, whose creation may run out of descriptors (Python then
    reports the half-made loop's finaliser: "Exception ignored in ... AttributeError: ... '_ssock'",
    at a few of these limits before the fix), an apply prints exactly one line, its own, and leaves nothing."""
    path, state = save_spec(tmp_path, topology(prefix, 30))
    for limit in range(58, 79):
        applied = restore_program("apply", "--rollback", path, "--state-dir", state, open_files=(limit, limit))
        assert applied.returncode == 2
        lines = applied.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("linuxnet-netns: ") and "EMFILE" in lines[0], (limit, applied.stderr)
        assert leftovers(prefix) == [], lines[0]


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
