"""The restore program without iptables programs: only the tables of the family whose programs are
missing are left out, everywhere (root namespace too), and named."""

from __future__ import annotations

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.cli import without_iptables


def test_only_the_missing_familys_tables_are_left_out() -> None:
    rule = {"name": "INPUT", "rules": ["-j ACCEPT"]}
    data = {"name": "t", "version": 1, "links": [],
            "host": {"iptables": [{"table": "nat", "ip_version": "ipv4", "chains": [rule]}]},
            "namespaces": [{"name": "a", "addresses": [{"dev": "lo", "address": "10.0.0.1/32"}],
                            "iptables": [{"table": "filter", "ip_version": "ipv4", "chains": [rule]},
                                         {"table": "filter", "ip_version": "ipv6", "chains": [rule]}]},
                           {"name": "b"}]}
    reduced, skipped = without_iptables(data, ["iptables-restore"])
    assert skipped == ["ipv4 nat in the root namespace", "ipv4 filter in netns a"]
    assert reduced["host"]["iptables"] == [] and "iptables" not in reduced["namespaces"][1]
    assert reduced["namespaces"][0]["iptables"] == [{"table": "filter", "ip_version": "ipv6", "chains": [rule]}]
    assert reduced["namespaces"][0]["addresses"] == data["namespaces"][0]["addresses"]
    assert len(data["namespaces"][0]["iptables"]) == 2  # the spec itself is left as it is
    assert without_iptables(data, ["ip6tables-save"])[1] == ["ipv6 filter in netns a"]
