"""The netns_iptables module inside namespaces the tests create (never the host's firewall)."""

from __future__ import annotations

import pytest

from helpers import converge, run, run_module, snapshot

SSH = "-p tcp --dport 22 -j ACCEPT"


def namespace(prefix: str) -> str:
    ns = prefix + "fw"
    run(["ip", "netns", "add", ns])
    return ns


def rules(ns: str, table: str = "filter", tool: str = "iptables") -> list:
    return [l for l in run([tool + "-save", "-t", table], ns=ns).splitlines() if l.startswith("-A")]


def test_reference_rule(prefix: str) -> None:
    ns = namespace(prefix)
    applied = converge("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": [SSH]}]}, prefix)
    assert rules(ns) == ["-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"]
    assert applied["chains"] == {"INPUT": {"policy": "ACCEPT", "rules": ["-p tcp -m tcp --dport 22 -j ACCEPT"]}}
    assert applied["diff"]["after"]["iptables ipv4 filter in netns %s" % ns]["INPUT"]["rules"] == \
        ["-p tcp -m tcp --dport 22 -j ACCEPT"]
    structured = {"protocol": "tcp", "destination_port": 22, "jump": "ACCEPT"}
    assert run_module("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": [structured]}]})["changed"] is False
    converge("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": [SSH]}], "state": "absent"}, prefix)
    assert rules(ns) == []


def test_foreign_rules_stay_in_place_and_order_is_kept(prefix: str) -> None:
    ns = namespace(prefix)
    run(["iptables", "-A", "INPUT", "-s", "10.1.0.0/16", "-j", "DROP"], ns=ns)
    run(["iptables", "-A", "INPUT", "-p", "udp", "-j", "DROP"], ns=ns)
    converge("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": [SSH, "-p tcp --dport 80 -j ACCEPT"]}]},
             prefix)
    assert rules(ns) == ["-A INPUT -s 10.1.0.0/16 -j DROP", "-A INPUT -p udp -j DROP",
                         "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT"]
    # a new declared rule in the middle goes right after its predecessor
    converge("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": [
        SSH, "-p tcp --dport 443 -j ACCEPT", "-p tcp --dport 80 -j ACCEPT"]}]}, prefix)
    assert rules(ns)[2:] == ["-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT",
                             "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT"]
    converge("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": [SSH], "exclusive": True}]}, prefix)
    assert rules(ns) == ["-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"]


def test_policy_user_chain_and_counters(prefix: str) -> None:
    ns = namespace(prefix)
    chains = [{"name": "LOGDROP", "rules": ["-m comment --comment 'dropped here' -j DROP"]},
              {"name": "INPUT", "policy": "DROP", "rules": ["-i lo -j ACCEPT", "-j LOGDROP"]}]
    converge("netns_iptables", {"netns": ns, "chains": chains}, prefix)
    saved = run(["iptables-save"], ns=ns)
    assert ":INPUT DROP" in saved and ":LOGDROP - " in saved
    assert '-A LOGDROP -m comment --comment "dropped here" -j DROP' in saved
    run(["ping", "-c", "1", "-W", "1", "127.0.0.1"], ns=ns, check=False)
    refused = run_module("netns_iptables", {"netns": ns, "chains": [{"name": "LOGDROP"}], "state": "absent"})
    assert refused["failed"] and "still referenced" in refused["msg"]
    converge("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": ["-j LOGDROP"]}, {"name": "LOGDROP"}],
                                "state": "absent"}, prefix)
    assert ":LOGDROP" not in run(["iptables-save"], ns=ns)


def test_nat_mangle_raw_and_ipv6(prefix: str) -> None:
    ns = namespace(prefix)
    converge("netns_iptables", {"netns": ns, "table": "nat", "chains": [
        {"name": "POSTROUTING", "rules": [{"source": "10.0.0.0/24", "out_interface": "up0", "jump": "MASQUERADE"},
                                          "-s 10.0.1.0/24 -j SNAT --to-source 192.0.2.1"]},
        {"name": "PREROUTING", "rules": ["-p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80"]}]}, prefix)
    assert len(rules(ns, "nat")) == 3
    converge("netns_iptables", {"netns": ns, "table": "mangle", "chains": [
        {"name": "PREROUTING", "rules": ["-p udp -j MARK --set-mark 7"]}]}, prefix)
    converge("netns_iptables", {"netns": ns, "table": "raw", "chains": [
        {"name": "PREROUTING", "rules": ["-p udp --dport 53 -j NOTRACK"]}]}, prefix)
    converge("netns_iptables", {"netns": ns, "ip_version": "ipv6", "chains": [
        {"name": "INPUT", "rules": [{"protocol": "ipv6-icmp", "icmp_type": "echo-request", "jump": "ACCEPT"}]}]}, prefix)
    assert len(rules(ns, "filter", "ip6tables")) == 1
    assert rules(ns, "filter") == []


def test_one_invalid_rule_changes_nothing(prefix: str) -> None:
    ns = namespace(prefix)
    before = snapshot(prefix)
    result = run_module("netns_iptables", {"netns": ns, "chains": [{"name": "INPUT", "rules": [SSH, "-p bogus -j ACCEPT"]}]})
    assert result["failed"] and "rules[1]" in result["object"] and "bogus" in result["msg"]
    assert snapshot(prefix) == before


BAD = [
    ({"table": "security"}, "value of table must be one of"),
    ({"ip_version": "ipv5"}, "value of ip_version must be one of"),
    ({"chains": [{"name": "MINE", "policy": "DROP"}]}, "only for built-in chains"),
    ({"chains": [{"name": "INPUT", "rules": ["-A INPUT -j ACCEPT"]}]}, "without -A"),
    ({"chains": [{"name": "INPUT", "rules": ["-j NOSUCHCHAIN"]}]}, "iptables refuses"),
    ({"chains": [{"name": "INPUT", "rules": [{"port": 22}]}]}, "unknown rule key"),
    ({"chains": [{"name": "INPUT", "rules": [42]}]}, "a rule is a string"),
    ({"chains": [{"name": "IN PUT"}]}, "not valid"),
    ({"chains": [{"name": "INPUT\n"}]}, "not valid"),
    ({"chains": [{"name": "MINE\n", "rules": ["-j ACCEPT"]}]}, "not valid"),
    ({"chains": [{"name": "INPUT"}, {"name": "INPUT"}]}, "listed twice"),
    ({"chains": [{"name": "INPUT", "rules": ["-p tcp --dport 'x"]}]}, "cannot split"),
    ({"netns": "MISSING"}, "does not exist"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input(prefix: str, args: dict, message: str) -> None:
    ns = namespace(prefix)
    args = dict({"chains": [{"name": "INPUT", "rules": [SSH]}]}, **args)
    args["netns"] = prefix + "zz" if args.get("netns") == "MISSING" else ns
    before = snapshot(prefix)
    result = run_module("netns_iptables", args)
    assert result["failed"] and message in result["msg"], result
    assert snapshot(prefix) == before
