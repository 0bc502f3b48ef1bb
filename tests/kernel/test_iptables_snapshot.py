"""Tables remembered between runs (iptables_snapshot) on the real kernel: a run reads a namespace's
tables again exactly when its nftables ruleset changed, whoever changed it, and a restore keeps
the counters the kernel has, not the remembered ones.

iptables-save and iptables-restore are wrapped (scripts first in PATH) so that every read is
logged with the namespace it ran in, and every canonicalisation of declared rules with its rules."""

from __future__ import annotations

import os
import shutil
import stat
from typing import Any, Dict, List

import pytest

from helpers import restore_program, run, save_spec

pytestmark = pytest.mark.skipif(b"nf_tables" not in run(["iptables-save", "--version"]).encode(),
                                reason="the snapshot needs the nf_tables backend of iptables")


def spec(prefix: str, extra_rule: bool = False, new_rule: str = "") -> Dict[str, Any]:
    """Two namespaces joined by a veth, an ICMP rule that counts the pings between them."""
    a, b = prefix + "a", prefix + "b"
    rules_a = ["-p icmp -j ACCEPT"] + (["-p tcp --dport 22 -j ACCEPT"] if extra_rule else []) + ([new_rule] if new_rule else [])
    return {
        "name": prefix + "snap",
        "namespaces": [
            {"name": a, "addresses": [{"dev": "ab", "address": "10.231.7.1/30"}],
             "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": rules_a}]},
                          {"table": "filter", "ip_version": "ipv6",
                           "chains": [{"name": "INPUT", "rules": ["-p ipv6-icmp -j ACCEPT"]}]}]},
            {"name": b, "addresses": [{"dev": "ba", "address": "10.231.7.2/30"}],
             "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]}]},
        ],
        "links": [{"type": "veth", "name": "ab", "netns": a, "peer": "ba", "peer_netns": b}],
    }


class Reads:
    """A directory with iptables-save, ip6tables-save, iptables-restore and ip6tables-restore that
    log the namespace (inode) of each call, and the rules a canonicalisation (a restore without -c)
    is given; ``version``: what the save tools say they are."""

    def __init__(self, tmp_path: Any, version: str = "") -> None:
        self.directory = tmp_path / "bin"
        self.directory.mkdir()
        self.log = tmp_path / "reads.log"
        self.rules = tmp_path / "canonicalised.log"
        for tool in ("iptables-save", "ip6tables-save", "iptables-restore", "ip6tables-restore"):
            fake_version = ('[ "$1" = --version ] && { echo "%s"; exit 0; }\n' % version) if version and "save" in tool else ""
            run_it = ('exec %s "$@"' % shutil.which(tool) if "save" in tool else
                      '[ "$#" = 0 ] && { tee -a %s | %s; exit $?; }\nexec %s "$@"' % (self.rules, shutil.which(tool),
                                                                                      shutil.which(tool)))
            script = self.directory / tool
            script.write_text('#!/bin/sh\n%secho "$(stat -L -c %%i /proc/self/ns/net) %s $*" >> %s\n%s\n'
                              % (fake_version, tool, self.log, run_it))
            script.chmod(script.stat().st_mode | stat.S_IXUSR)
        self.env = {"PATH": "%s:%s" % (self.directory, os.environ["PATH"])}

    def canonicalised(self) -> List[str]:
        """The rules given to canonicalisations since the last call (their -A lines)."""
        lines = self.rules.read_text().splitlines() if self.rules.exists() else []
        self.rules.write_text("")
        return sorted(line for line in lines if line.startswith("-A "))

    def namespaces(self, tool: str = "iptables-save") -> List[str]:
        """The namespaces ``tool`` read since the last call, by name (only this test's)."""
        lines = [line.split() for line in (self.log.read_text().splitlines() if self.log.exists() else [])]
        self.log.write_text("")
        names = {os.stat("/run/netns/" + n).st_ino: n for n in os.listdir("/run/netns")}
        return sorted(names.get(int(words[0]), "other") for words in lines if words[1:3] == [tool, "-c"])

    def any(self) -> List[str]:
        """Every read since the last call, of either family."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.log.write_text("")
        return [line for line in lines if line.split()[2:3] == ["-c"]]


def restore(reads: Reads, command: str, path: str, state_dir: str) -> Any:
    return restore_program(command, path, "--state-dir", state_dir, extra_env=reads.env)


def test_only_namespaces_changed_since_the_last_run_are_read(prefix: str, tmp_path: Any) -> None:
    a, b = prefix + "a", prefix + "b"
    reads = Reads(tmp_path)
    path, state_dir = save_spec(tmp_path, spec(prefix))
    assert restore(reads, "apply", path, state_dir).returncode == 0
    reads.namespaces()
    for command in ("apply", "check", "apply"):
        result = restore(reads, command, path, state_dir)
        assert result.returncode == 0, result.stdout + result.stderr
        assert reads.any() == [], command  # neither family: the IPv6 table outlived the IPv4 restore
    # Another tool removes a declared rule: that namespace is read again, and the drift seen.
    run(["iptables", "-D", "INPUT", "-p", "icmp", "-j", "ACCEPT"], ns=a)
    drift = restore(reads, "check", path, state_dir)
    assert drift.returncode == 1 and "iptables" in drift.stdout, drift.stdout
    assert reads.namespaces() == [a]
    assert restore(reads, "apply", path, state_dir).returncode == 0
    assert restore(reads, "check", path, state_dir).returncode == 0
    reads.namespaces()
    # A change outside iptables' tables (nftables, another table family) also makes it read again.
    run(["nft", "add", "table", "inet", prefix + "x"], ns=b)
    assert restore(reads, "check", path, state_dir).returncode == 0
    assert reads.namespaces() == [b]


def test_a_namespace_made_anew_under_the_same_name_is_read(prefix: str, tmp_path: Any) -> None:
    a = prefix + "a"
    reads = Reads(tmp_path)
    path, state_dir = save_spec(tmp_path, spec(prefix))
    assert restore(reads, "apply", path, state_dir).returncode == 0
    run(["ip", "netns", "delete", a])
    run(["ip", "netns", "add", a])
    reads.namespaces()
    drift = restore(reads, "check", path, state_dir)
    assert drift.returncode == 1
    assert a in reads.namespaces()
    assert restore(reads, "apply", path, state_dir).returncode == 0
    assert restore(reads, "check", path, state_dir).returncode == 0


def test_a_restore_keeps_the_counters_the_kernel_has(prefix: str, tmp_path: Any) -> None:
    a, b = prefix + "a", prefix + "b"
    reads = Reads(tmp_path)
    path, state_dir = save_spec(tmp_path, spec(prefix))
    assert restore(reads, "apply", path, state_dir).returncode == 0
    run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.231.7.1"], ns=b)
    path, state_dir = save_spec(tmp_path, spec(prefix, extra_rule=True))
    assert restore(reads, "apply", path, state_dir).returncode == 0
    counted = [line for line in run(["iptables-save", "-c", "-t", "filter"], ns=a).splitlines()
               if line.endswith("-A INPUT -p icmp -j ACCEPT")]
    assert len(counted) == 1 and int(counted[0][1:].split(":")[0]) >= 3, counted


def test_rules_are_canonicalised_once_while_iptables_stays_the_same(prefix: str, tmp_path: Any) -> None:
    reads = Reads(tmp_path)
    path, state_dir = save_spec(tmp_path, spec(prefix))
    assert restore(reads, "apply", path, state_dir).returncode == 0
    assert reads.canonicalised() == ["-A INPUT -p icmp -j ACCEPT", "-A INPUT -p ipv6-icmp -j ACCEPT",
                                     "-A INPUT -p tcp --dport 22 -j ACCEPT"]
    for command in ("apply", "check", "apply"):
        assert restore(reads, command, path, state_dir).returncode == 0
        assert reads.canonicalised() == [], command
    # A rule added to the spec: only that one; it is refused or accepted by iptables as before.
    path, state_dir = save_spec(tmp_path, spec(prefix, new_rule="-p udp --dport 53 -j ACCEPT"))
    assert restore(reads, "apply", path, state_dir).returncode == 0
    assert reads.canonicalised() == ["-A INPUT -p udp --dport 53 -j ACCEPT"]
    assert "-A INPUT -p udp -m udp --dport 53 -j ACCEPT" in run(["iptables-save", "-t", "filter"], ns=prefix + "a")
    path, state_dir = save_spec(tmp_path, spec(prefix, new_rule="-p udp --dport 53 -j NOSUCHTARGET"))
    refused = restore(reads, "apply", path, state_dir)
    assert refused.returncode != 0 and "NOSUCHTARGET" in refused.stdout + refused.stderr
    # Another iptables binary (here: the wrapper changed) canonicalises everything again.
    path, state_dir = save_spec(tmp_path, spec(prefix, new_rule="-p udp --dport 53 -j ACCEPT"))
    reads.canonicalised()
    os.utime(reads.directory / "iptables-restore", ns=(1, 1))
    assert restore(reads, "check", path, state_dir).returncode == 0
    assert reads.canonicalised() == ["-A INPUT -p icmp -j ACCEPT", "-A INPUT -p tcp --dport 22 -j ACCEPT",
                                     "-A INPUT -p udp --dport 53 -j ACCEPT"]


def test_not_remembered_under_the_legacy_backend(prefix: str, tmp_path: Any) -> None:
    """An iptables that is not the nf_tables one (here: one that says so) is read every run."""
    reads = Reads(tmp_path, version="iptables-save v1.8.9 (legacy)")
    path, state_dir = save_spec(tmp_path, spec(prefix))
    assert restore(reads, "apply", path, state_dir).returncode == 0
    reads.namespaces()
    assert restore(reads, "check", path, state_dir).returncode == 0
    assert reads.namespaces() == sorted([prefix + "a", prefix + "b"])
