"""Names are matched whole: a trailing newline (which Python's ``$`` lets through) is refused for
every kind of name, by the topology format and by each module's spec."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.iptables import iptables_spec
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.namespace import namespace_spec
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.validation import (check_ifname, check_mac,
                                                                                        check_netns_name, check_sysctl_key)
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.veth import veth_spec

from ansible_collections.linuxnet.netns.tests.unit.plugins.module_utils._engine.test_topology_spec import REFERENCE, with_change


@pytest.mark.parametrize("check,good", [
    (check_netns_name, "msb"),
    (check_ifname, "veth0"),
    (check_mac, "02:00:00:00:00:01"),
    (check_sysctl_key, "net.ipv4.ip_forward"),
])
@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\t"])
def test_checks_refuse_a_trailing_line_break(check: Callable[..., Any], good: str, suffix: str) -> None:
    assert check(good, "field") == good
    with pytest.raises(NetnsError) as caught:
        check(good + suffix, "field")
    assert caught.value.obj == "field"


@pytest.mark.parametrize("path,value,where", [
    ("name", "demo\n", "name"),
    ("namespaces.0.name", "msb\n", "namespaces[0].name"),
    ("links.0.name", "veth0\n", "links[0].name"),
    ("links.0.mac", "02:00:00:00:00:01\n", "links[0].mac"),
    ("namespaces.0.sysctls", {"net.ipv4.ip_forward\n": 1}, "namespaces[0].sysctls.net.ipv4.ip_forward\n"),
])
def test_topology_refuses_names_with_a_trailing_newline(path: str, value: Any, where: str) -> None:
    with pytest.raises(NetnsError) as caught:
        parse_topology(with_change(path, value))
    assert caught.value.obj == where


def test_reference_still_parses() -> None:
    parse_topology(copy.deepcopy(REFERENCE))


def test_chain_names_are_matched_whole() -> None:
    # the topology's chains are checked by the same spec, with the path of the table
    with pytest.raises(NetnsError) as caught:
        iptables_spec("msb", "ipv4", "filter", [{"name": "INPUT\n", "rules": []}], field="namespaces[0].iptables[0]")
    assert caught.value.obj == "namespaces[0].iptables[0].chains[0].name"


def test_module_specs_refuse_names_with_a_trailing_newline() -> None:
    with pytest.raises(NetnsError, match="not a per-namespace sysctl"):
        namespace_spec("msb", sysctls={"net.ipv4.ip_forward\n": 1})
    with pytest.raises(NetnsError, match="not a MAC address"):
        veth_spec("a0", "a1", mac="02:00:00:00:00:01\n")
    with pytest.raises(NetnsError, match="chain name"):
        iptables_spec("msb", "ipv4", "filter", [{"name": "INPUT\n", "rules": []}])
    with pytest.raises(NetnsError, match="chain name"):
        iptables_spec("msb", "ipv4", "filter", [{"name": "MINE\n", "rules": []}])
