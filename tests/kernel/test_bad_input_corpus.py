"""Bad input to the topology format, through the topology module and through the restore program's
saved file: each case fails with a message naming the field, without a traceback, and leaves the
machine byte-identical (namespaces, links, addresses, routes, rules, /etc/netns). The per-module
corpora live beside each module's tests (test_*_module.py, BAD lists)."""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, List, Tuple

import pytest

from helpers import difference, netns_list, restore_program, run_module, snapshot


def valid(prefix: str) -> Dict[str, Any]:
    """A valid topology using every section; each case breaks exactly one thing."""
    a, b = prefix + "a", prefix + "b"
    return {
        "name": prefix + "bad",
        "namespaces": [
            {"name": a, "sysctls": {"net.ipv4.ip_forward": 1}, "nameservers": ["192.0.2.53"],
             "addresses": [{"dev": "ab", "address": "10.232.1.1/24"}, {"dev": "ab", "address": "fd32:1::1/64"}],
             "routes": [{"dst": "10.232.9.0/24", "via": "10.232.1.2"}],
             "rules": [{"priority": 1000, "from": "10.232.1.0/24", "table": 100}],
             "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]}],
             "nftables": [{"family": "inet", "table": "filter",
                           "definition": "chain input { type filter hook input priority 0; policy accept; }"}]},
            {"name": b, "addresses": [{"dev": "ba", "address": "10.232.1.2/24"},
                                      {"dev": "ba", "address": "fd32:1::2/64", "nodad": True}]},
        ],
        "links": [
            {"type": "veth", "name": "ab", "netns": a, "peer": "ba", "peer_netns": b},
            {"type": "veth", "name": prefix + "r", "peer": "ra", "peer_netns": a},
            {"type": "bridge", "name": "br0", "netns": b, "ports": []},
        ],
        "host": {"addresses": [{"dev": prefix + "r", "address": "10.232.2.1/30"}],
                 "rules": [{"priority": 1000, "fwmark": "0x1", "table": 100}]},
        "services": [{"unit": "web.service", "netns": a}],
    }


def put(spec: Dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        if int(last) == len(node):
            node.append(value)
        else:
            node[int(last)] = value
    else:
        node[last] = value


DELETE = object()
# (dotted path, new value, the field the message must name, words the message must contain)
CASES: List[Tuple[str, Any, str, str]] = [
    # names: hostile, malformed, too long
    ("namespaces.0.name", "../x", "namespaces[0].name", "not allowed"),
    ("namespaces.0.name", "a/b", "namespaces[0].name", "not allowed"),
    ("namespaces.0.name", "..", "namespaces[0].name", "not allowed"),
    ("namespaces.0.name", "a\x00b", "namespaces[0].name", "not allowed"),
    ("namespaces.0.name", "-x", "namespaces[0].name", "must not start"),
    ("namespaces.0.name", "a b", "namespaces[0].name", "whitespace"),
    ("namespaces.0.name", "", "namespaces[0].name", "non-empty"),
    ("namespaces.0.name", "n" * 300, "namespaces[0].name", "longer than"),
    ("namespaces.0.name", 7, "namespaces[0].name", ""),
    ("links.0.name", "x" * 16, "links[0].name", "at most 15"),
    ("links.0.name", "ab/c", "links[0].name", ""),
    ("links.0.name", "-ab", "links[0].name", ""),
    ("links.0.name", "ab c", "links[0].name", ""),
    ("links.0.name", "Ünïcødé", "links[0].name", "printable ASCII"),
    ("namespaces.1.name", "név\u200b", "namespaces[1].name", "printable ASCII"),
    ("links.0.peer", "", "links[0].peer", ""),
    ("name", "../etc/passwd", "name", "topology name must match"),
    ("name", "", "name", "topology name must match"),
    ("name", "x" * 65, "name", "topology name must match"),
    # names are matched whole: Python's `$` would let a final newline through
    ("name", "%(prefix)sbad\n", "name", "topology name must match"),
    ("namespaces.0.name", "%(prefix)sa\n", "namespaces[0].name", "whitespace"),
    ("links.0.name", "ab\n", "links[0].name", "invalid interface name"),
    ("namespaces.0.sysctls", {"net.ipv4.ip_forward\n": 1}, "namespaces[0].sysctls", "only net.* keys"),
    ("links.0.mac", "02:00:00:00:00:01\n", "links[0].mac", "not a MAC address"),
    ("namespaces.0.iptables.0.chains.0.name", "INPUT\n", "namespaces[0].iptables[0].chains[0].name", "not valid"),
    # CIDRs and addresses
    ("namespaces.0.addresses.0.address", "10.232.1.1", "namespaces[0].addresses[0].address", ""),
    ("namespaces.0.addresses.0.address", "10.232.1.1/33", "namespaces[0].addresses[0].address", ""),
    ("namespaces.0.addresses.0.address", "300.1.1.1/24", "namespaces[0].addresses[0].address", ""),
    ("namespaces.0.addresses.0.address", "fd00::zz/64", "namespaces[0].addresses[0].address", ""),
    ("namespaces.0.addresses.0.address", ["10.232.1.1/24"], "namespaces[0].addresses[0].address", ""),
    ("namespaces.0.nameservers", ["dns.example"], "namespaces[0].nameservers", "not a valid IP"),
    ("namespaces.0.routes.0.dst", "10.232.9.1/24", "namespaces[0].routes[0].dst", "host bits"),
    ("namespaces.0.routes.0.dst", "nowhere", "namespaces[0].routes[0].dst", ""),
    ("namespaces.0.routes.0.via", "10.99.9.9", "namespaces[0].routes[0].via", "on no subnet declared"),
    ("namespaces.0.routes.0.via", "fd00::1", "namespaces[0].routes[0].via", "IPv6 but the destination"),
    ("namespaces.0.routes.0.metric", -1, "namespaces[0].routes[0].metric", ""),
    ("namespaces.0.routes.0.table", "lost", "namespaces[0].routes[0].table", ""),
    # duplicates and dangling references
    ("namespaces.1.name", "%(prefix)sa", "namespaces[1]", "duplicate namespace"),
    ("links.1", {"type": "veth", "name": "ab", "netns": "%(prefix)sa", "peer": "zz", "peer_netns": "%(prefix)sb"},
     "links[1].name", "declared twice"),
    ("namespaces.0.addresses.1", {"dev": "ab", "address": "10.232.1.1/25"}, "namespaces[0].addresses[1]", "twice"),
    ("links.0.peer_netns", "%(prefix)sghost", "links[0].peer_netns", "not declared"),
    ("links.2.ports", ["nope"], "links[2].ports[0]", "not a link declared"),
    ("namespaces.0.addresses.0.dev", "nope", "namespaces[0].addresses[0].dev", ""),
    ("namespaces.0.routes.0", {"dst": "10.232.9.0/24"}, "namespaces[0].routes[0]", "needs a gateway"),
    # policy routing rules: the kernel's default priorities, tables, selectors, duplicates
    ("namespaces.0.rules.0.priority", 0, "namespaces[0].rules[0].priority", "kernel's default"),
    ("namespaces.0.rules.0.priority", 32766, "namespaces[0].rules[0].priority", "kernel's default"),
    ("namespaces.0.rules.0.priority", None, "namespaces[0].rules[0].priority", "needs its priority"),
    ("namespaces.0.rules.0.table", "local", "namespaces[0].rules[0].table", "main or a number"),
    ("namespaces.0.rules.0.table", 0, "namespaces[0].rules[0].table", "main or a number"),
    ("namespaces.0.rules.0.from", "10.232.1.1/24", "namespaces[0].rules[0].from", "host bits"),
    ("namespaces.0.rules.0.to", "fd32::/16", "namespaces[0].rules[0].to", "different families"),
    ("namespaces.0.rules.0.iif", "x" * 16, "namespaces[0].rules[0].iif", "at most 15"),
    ("namespaces.0.rules.0.fwmark", "0x1\n", "namespaces[0].rules[0].fwmark", "fwmark must be"),
    ("namespaces.0.rules.0.lookup", 100, "namespaces[0].rules[0]", "unknown key(s) lookup"),
    ("namespaces.0.rules.1", {"priority": 1000, "from": "10.232.1.0/24", "table": 7}, "namespaces[0].rules[1]",
     "duplicate rule"),
    ("host.rules.0.fwmark", 0, "host.rules[0].fwmark", "give fwmask"),
    ("host.rules.0.family", "inet4", "host.rules[0].family", "inet or inet6"),
    ("host.rules", {"priority": 1}, "host.rules", "must be a list"),
    # sysctls, iptables
    ("namespaces.0.sysctls", {"kernel.hostname": "x"}, "namespaces[0].sysctls", "only net.* keys"),
    ("namespaces.0.sysctls", {"net.ipv4.../../x": "1"}, "namespaces[0].sysctls", "only net.* keys"),
    ("namespaces.0.iptables.0.table", "nope", "namespaces[0].iptables[0].table", "filter, nat"),
    ("namespaces.0.iptables.0.ip_version", "ipv5", "namespaces[0].iptables[0].ip_version", "ipv4 or ipv6"),
    ("namespaces.0.iptables.0.chains.0.name", "IN PUT", "namespaces[0].iptables[0].chains[0].name", ""),
    ("namespaces.0.iptables.0.chains.0.policy", "MAYBE", "namespaces[0].iptables[0].chains[0].policy", ""),
    ("namespaces.0.iptables.0.chains.0.rules", ["-p tcp --dport 99999 -j ACCEPT"], "iptables", "iptables refuses"),
    ("namespaces.0.iptables.0.chains.0.rules", ["-j NOSUCHTARGET"], "iptables", "iptables refuses"),
    ("namespaces.0.iptables.0.chains.0.rules", ["; rm -rf /"], "iptables", "iptables refuses"),
    # nftables
    ("namespaces.0.nftables", {"table": "filter"}, "namespaces[0].nftables", "must be a list"),
    ("namespaces.0.nftables.0.family", "ipx", "namespaces[0].nftables[0].family", "must be one of"),
    ("namespaces.0.nftables.0.table", "fil ter", "namespaces[0].nftables[0].table", "must match"),
    ("namespaces.0.nftables.0.definition", 5, "namespaces[0].nftables[0].definition", "text inside"),
    ("namespaces.0.nftables.0.definition", 'include "/etc/nftables.conf"', "namespaces[0].nftables[0].definition",
     "may not include"),
    ("namespaces.0.nftables.0.hook", "input", "namespaces[0].nftables[0]", "unknown key(s) hook"),
    ("namespaces.0.nftables.1", {"table": "filter", "definition": ""}, "namespaces[0].nftables[1].table",
     "declared twice"),
    ("namespaces.0.nftables.0.definition", "}\ntable ip %(prefix)sother {\nchain c { type filter hook input priority 0; }",
     "namespaces[0].nftables[0].definition", "unbalanced braces"),
    ("namespaces.0.nftables.0.definition", "}\nadd table ip x\ndelete table ip x\ntable inet filter {",
     "namespaces[0].nftables[0].definition", "unbalanced braces"),
    ("namespaces.0.nftables.0.definition", "chain c {", "namespaces[0].nftables[0].definition", "unbalanced braces"),
    # types and unknown keys
    ("namespaces", {"name": "x"}, "namespaces", "must be a list"),
    ("namespaces.0", "msb", "namespaces[0]", "must be a mapping"),
    ("namespaces.0.colour", "blue", "namespaces[0]", "unknown key(s) colour"),
    ("links.0.type", "tunnel", "links[0].type", "must be one of"),
    ("links.0.mtu", "big", "links[0].mtu", ""),
    ("links.0.mtu", 10, "links[0].mtu", "out of range"),
    ("links.0.mac", "zz:00:00:00:00:00", "links[0].mac", ""),
    ("links.0.up", "yes", "links[0].up", "true or false"),
    ("links.0.extra", 1, "links[0]", "unknown key(s) extra"),
    ("host.addresses.0", "veth0 10.0.0.1/24", "host.addresses[0]", "must be a mapping"),
    ("version", 2, "version", "unsupported format version"),
    ("surprise", True, "topology", "unknown key(s) surprise"),
    # the services section: validated with the rest, never acted on by the engine
    ("services", {"unit": "web.service"}, "services", "must be a list"),
    ("services.0.unit", "../web.service", "services[0].unit", "systemd service unit name"),
    ("services.0.netns", "nowhere", "services[0].netns", "not declared"),
    ("services.0.user", "www", "services[0]", "unknown key(s) user"),
]

# Input the kernel refuses (or silently drops) part-way through an apply: validation and check mode
# refuse it first. Run once more through the restore program without --rollback (below).
KERNEL_CASES: List[Tuple[str, Any, str, str]] = [
    # sysctls, tried in a throw-away namespace: values, keys a new namespace lacks, read-only keys
    ("namespaces.0.sysctls", {"net.ipv4.ip_forward": "abc"}, "namespaces[0].sysctls.net.ipv4.ip_forward",
     "refuses the value"),
    ("namespaces.0.sysctls", {"net.ipv4.ip_forward": 1.5}, "namespaces[0].sysctls.net.ipv4.ip_forward",
     "refuses the value"),
    ("namespaces.0.sysctls", {"net.ipv4.ip_forward": "1 2"}, "namespaces[0].sysctls.net.ipv4.ip_forward",
     "keeps '1'"),
    ("namespaces.0.sysctls", {"net.ipv4.ip_forward": "1\n0"}, "namespaces[0].sysctls.net.ipv4.ip_forward",
     "one line"),
    ("namespaces.0.sysctls", {"net.ipv4.no_such_key": 1}, "namespaces[0].sysctls.net.ipv4.no_such_key",
     "no such sysctl in a new namespace"),
    ("namespaces.0.sysctls", {"net.core.netdev_max_backlog": 1000},
     "namespaces[0].sysctls.net.core.netdev_max_backlog", "no such sysctl in a new namespace"),
    ("namespaces.0.sysctls", {"net.ipv4.conf.all.mc_forwarding": 1},
     "namespaces[0].sysctls.net.ipv4.conf.all.mc_forwarding", "does not let it be set"),
    ("namespaces.0.sysctls", {"net.ipv4.conf.eth9.forwarding": 1},
     "namespaces[0].sysctls.net.ipv4.conf.eth9.forwarding", "no such sysctl in a new namespace"),
    ("namespaces.0.sysctls", {"net.ipv4.conf.ab.forwarding": "on"},
     "namespaces[0].sysctls.net.ipv4.conf.ab.forwarding", "refuses the value"),
    # nftables definitions nft refuses, or that reach beyond their table: tried in a throw-away namespace
    ("namespaces.0.nftables.0.definition", "chain input { type filter hook nowhere priority 0; }",
     "namespaces[0].nftables[0].definition", "nft refuses"),
    ("namespaces.0.nftables.0.definition", 'chain input { type filter hook input priority 0; nonsense "}"; }',
     "namespaces[0].nftables[0].definition", "nft refuses"),
    # MACs
    ("links.0.mac", "00:00:00:00:00:00", "links[0].mac", "all-zero"),
    ("links.0.peer_mac", "ff:ff:ff:ff:ff:ff", "links[0].peer_mac", "broadcast"),
    # addresses no link can hold
    ("namespaces.1.addresses.1", {"dev": "ba", "address": "ff02::5/64"}, "namespaces[1].addresses[1].address",
     "multicast"),
    ("namespaces.1.addresses.1", {"dev": "ba", "address": "224.0.0.5/24"}, "namespaces[1].addresses[1].address",
     "multicast"),
    ("namespaces.1.addresses.1", {"dev": "ba", "address": "::1/128"}, "namespaces[1].addresses[1].address",
     "belongs on lo"),
    ("namespaces.1.addresses.1", {"dev": "ba", "address": "127.0.0.2/8"}, "namespaces[1].addresses[1].address",
     "belongs on lo"),
    ("namespaces.1.addresses.1", {"dev": "ba", "address": "0.0.0.0/8"}, "namespaces[1].addresses[1].address",
     "not a host address"),
    ("links.0.peer_mtu", 1200, "namespaces[1].addresses[1].address", "IPv6 needs at least 1280"),
    # gateways and sources
    ("namespaces.0.routes.1", {"dst": "fd32:9::/64", "via": "fe80::1"}, "namespaces[0].routes[1].dev", "link-local"),
    ("namespaces.0.routes.1", {"dst": "fd32:9::/64", "via": "fd32:1::1"}, "namespaces[0].routes[1].via", "itself"),
    ("namespaces.0.routes.0.via", "224.0.0.1", "namespaces[0].routes[0].via", "multicast"),
    ("namespaces.0.routes.0.onlink", True, "namespaces[0].routes[0].dev", "onlink"),
    ("namespaces.0.routes.0.src", "10.232.1.99", "namespaces[0].routes[0].src", "no address declared"),
    ("namespaces.0.routes.1", {"dst": "fd32:9::/64", "via": "fd32:1::2", "src": "fd32:1::1"},
     "namespaces[0].routes[1].src", "nodad"),
    ("links.0.up", False, "namespaces[0].routes[0].via", "declared down"),
    # link names the kernel refuses
    ("links.1.peer", "lo", "links[1].peer", "loopback"),
    ("links.2.name", "lo", "links[2].name", "loopback"),
    ("links.2.name", "all", "links[2].name", "settings of all links"),
    ("links.3", {"type": "macvlan", "name": "mv0", "netns": "%(prefix)sa", "parent": "lo",
                 "parent_netns": "%(prefix)sa"}, "links[3].parent", "Ethernet"),
    # vxlans
    ("links.3", {"type": "vxlan", "name": "vx0", "netns": "%(prefix)sa", "id": 16777216, "remote": "10.232.1.2"},
     "links[3].id", "from 0 to 16777215"),
    ("links.3", {"type": "vxlan", "name": "vx0", "netns": "%(prefix)sa", "id": 5, "group": "10.232.1.2",
                 "dev": "ba", "underlay_netns": "%(prefix)sb"}, "links[3].group", "not a multicast address"),
    ("links.3", {"type": "vxlan", "name": "vx0", "netns": "%(prefix)sa", "id": 5, "remote": "10.232.1.2",
                 "dev": "ab", "underlay_netns": "%(prefix)sb"}, "links[3].dev", "not declared in namespace"),
]
# A root-namespace device a link is made on that does not exist: the module refuses it before any
# change; the restore program (the boot) waits for it instead, as for a NIC udev has not brought up
# yet, then restores the rest (test_restore_program_waits_for_a_missing_root_device below).
ROOT_DEVICE_CASES: List[Tuple[str, Any, str, str]] = [
    ("links.3", {"type": "vxlan", "name": "vx0", "netns": "%(prefix)sa", "id": 5, "remote": "10.232.1.2",
                 "dev": "%(prefix)snodev"}, "vx0 in netns", "nodev does not exist in the root namespace"),
]
CASES += KERNEL_CASES + ROOT_DEVICE_CASES


def _bad(prefix: str, path: str, value: Any) -> Dict[str, Any]:
    spec = copy.deepcopy(valid(prefix))
    put(spec, path, _with_prefix(value, prefix))
    return spec


def _with_prefix(value: Any, prefix: str) -> Any:
    if isinstance(value, str) and "%(prefix)s" in value:
        return value % {"prefix": prefix}
    if isinstance(value, dict):
        return {k: _with_prefix(v, prefix) for k, v in value.items()}
    return value


def _assert_clean_failure(message: str, where: str, words: str) -> None:
    assert "Traceback" not in message
    if where:
        assert where in message, message
    if words:
        assert words in message, message


@pytest.mark.parametrize("path,value,where,words", CASES, ids=["%s=%r" % (c[0], c[1])[:60] for c in CASES])
def test_topology_module_refuses(prefix: str, path: str, value: Any, where: str, words: str) -> None:
    before = snapshot(prefix)
    result = run_module("topology", {"topology": _bad(prefix, path, value), "state_dir": "/nonexistent-state"})
    assert result.get("failed") is True, result
    assert "exception" not in result
    _assert_clean_failure(result["msg"], where, words)
    after = snapshot(prefix)
    assert after == before, difference(before, after)


@pytest.mark.parametrize("command", ["apply", "check"])
@pytest.mark.parametrize("path,value,where,words", KERNEL_CASES,
                         ids=["%s=%r" % (c[0], c[1])[:60] for c in KERNEL_CASES])
def test_restore_program_without_rollback_refuses(prefix: str, tmp_path: Any, command: str, path: str, value: Any,
                                                  where: str, words: str) -> None:
    """Without --rollback a refusal part-way would leave namespaces and links behind: these are
    refused before the first change."""
    spec_path = tmp_path / "topology.json"
    spec_path.write_text(json.dumps(_bad(prefix, path, value)))
    before = snapshot(prefix)
    proc = restore_program(command, str(spec_path), "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    _assert_clean_failure(proc.stderr, where, words)
    assert "change(s) applied" not in proc.stderr
    after = snapshot(prefix)
    assert after == before, difference(before, after)
    assert not (tmp_path / "state").exists()


FILES = [
    ("truncated", lambda text: text[: len(text) // 2], "not valid JSON"),
    ("empty", lambda text: "", "not valid JSON"),
    ("binary", lambda text: "\x00\xff\xfe garbage", "not valid JSON"),
    ("a list", lambda text: "[]", "must be a mapping"),
    ("a string", lambda text: '"lab"', "must be a mapping"),
    ("bit flip", lambda text: text.replace('"namespaces"', '"namespacez"', 1), "unknown key(s) namespacez"),
    ("wrong type", lambda text: text.replace('"10.232.1.1/24"', "1024", 1), "namespaces[0].addresses[0].address"),
    ("hostile name", lambda text: text.replace('bad"', '../../etc/x"', 1), "topology name must match"),
]


def test_restore_program_waits_for_a_missing_root_device_then_restores_the_rest(prefix: str, tmp_path: Any) -> None:
    """At boot a vxlan whose root-namespace dev is missing is waited for (bounded) and reported, the
    rest restored (exit 2, as for a vlan's missing parent); teardown then leaves nothing."""
    path, value, _where, _words = ROOT_DEVICE_CASES[0]
    spec_path = tmp_path / "topology.json"
    spec_path.write_text(json.dumps(_bad(prefix, path, value)))
    state = str(tmp_path / "state")
    before = snapshot(prefix)
    applied = restore_program("apply", str(spec_path), "--state-dir", state, "--wait-parents", "0.5")
    assert applied.returncode == 2 and "Traceback" not in applied.stderr, applied.stderr
    assert "parent device(s) %snodev did not appear" % prefix in applied.stderr, applied.stderr
    assert "skipped: vx0 in %sa" % prefix in applied.stderr, applied.stderr
    assert prefix + "a" in netns_list()
    torn = restore_program("teardown", str(spec_path), "--state-dir", state)
    assert torn.returncode == 0, torn.stderr
    after = snapshot(prefix)
    assert after == before, difference(before, after)


@pytest.mark.parametrize("command", ["apply", "check", "teardown"])
@pytest.mark.parametrize("case,corrupt,words", FILES, ids=[f[0] for f in FILES])
def test_restore_program_refuses_bad_file(prefix: str, tmp_path: Any, command: str, case: str, corrupt: Any,
                                          words: str) -> None:
    path = tmp_path / "topology.json"
    path.write_text(corrupt(json.dumps(valid(prefix), indent=1)), errors="surrogateescape")
    before = snapshot(prefix)
    proc = restore_program(command, str(path), "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    _assert_clean_failure(proc.stderr, "", words)
    assert proc.stdout == ""
    after = snapshot(prefix)
    assert after == before, difference(before, after)
    assert not (tmp_path / "state").exists()  # not even an ownership record
