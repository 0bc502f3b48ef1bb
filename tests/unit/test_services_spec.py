"""The topology's ``services`` section (issue 18): validated before any change, every error naming
its path; carried in the parsed topology (the engine never acts on it, the role writes drop-ins).
The role checks the same names before it puts them into paths: its rules must be the engine's."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import (
    SERVICE_NETNS, SERVICE_UNIT, parse_topology)

ROOT = Path(__file__).resolve().parents[2]

BASE: Dict[str, Any] = {
    "name": "svc",
    "namespaces": [{"name": "web", "nameservers": ["192.0.2.53"]}, {"name": "db"}],
    "services": [{"unit": "web.service", "netns": "web"}],
}


def with_services(services: Any) -> Dict[str, Any]:
    spec = copy.deepcopy(BASE)
    spec["services"] = services
    return spec


def test_services_are_carried_with_their_defaults() -> None:
    topology = parse_topology(with_services([
        {"unit": "web.service", "netns": "web"},
        {"unit": "worker@blue.service", "netns": "db", "dns": False, "restart_on_recreate": False},
        {"unit": "dev-sda\\x2d1.service", "netns": "db"}]))
    assert topology.services == [
        {"unit": "web.service", "netns": "web", "dns": True, "restart_on_recreate": True},
        {"unit": "worker@blue.service", "netns": "db", "dns": False, "restart_on_recreate": False},
        {"unit": "dev-sda\\x2d1.service", "netns": "db", "dns": True, "restart_on_recreate": True}]


@pytest.mark.parametrize("services", [None, []])
def test_no_services_is_an_empty_section(services: Any) -> None:
    assert parse_topology(with_services(services)).services == []


def test_a_spec_without_the_section_parses_as_before() -> None:
    spec = copy.deepcopy(BASE)
    del spec["services"]
    assert parse_topology(spec).services == []
    assert parse_topology(spec, for_apply=False).services == []


BAD: List[Any] = [
    # (services, path of the error, words of the message)
    ({"unit": "web.service", "netns": "web"}, "services", "must be a list"),
    (["web.service"], "services[0]", "must be a mapping"),
    ([{"unit": "web.service", "netns": "web", "user": "www"}], "services[0]", "unknown key(s) user"),
    ([{"netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "web", "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "web.socket", "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "web.service\n", "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "../web.service", "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "a/b.service", "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "-web.service", "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "web@.service", "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "my web.service", "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "w%i.service", "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "w" * 248 + ".service", "netns": "web"}], "services[0].unit", "at most 255"),
    ([{"unit": ["web.service"], "netns": "web"}], "services[0].unit", "systemd service unit name"),
    ([{"unit": "web.service"}], "services[0].netns", "non-empty string"),
    ([{"unit": "web.service", "netns": "../web"}], "services[0].netns", "not allowed"),
    ([{"unit": "web.service", "netns": "mail"}], "services[0].netns", "not declared"),
    ([{"unit": "web.service", "netns": "web"}, {"unit": "web.service", "netns": "db"}], "services[1]",
     "duplicate unit web.service"),
    ([{"unit": "web.service", "netns": "web", "dns": "yes"}], "services[0].dns", "true or false"),
    ([{"unit": "web.service", "netns": "web", "restart_on_recreate": 1}], "services[0].restart_on_recreate",
     "true or false"),
]


@pytest.mark.parametrize("services,where,message", BAD)
def test_bad_services_name_their_path(services: Any, where: str, message: str) -> None:
    for for_apply in (True, False):  # a record's spec is refused the same way
        with pytest.raises(NetnsError) as caught:
            parse_topology(with_services(services), for_apply=for_apply)
        assert caught.value.obj == where
        assert message in str(caught.value)


def test_a_namespace_a_unit_file_cannot_name_is_refused_for_services_only() -> None:
    spec = {"name": "svc", "namespaces": [{"name": "a:b"}]}
    parse_topology(spec)  # a valid namespace name ...
    with pytest.raises(NetnsError) as caught:  # ... that BindReadOnlyPaths=SRC:DST cannot carry
        parse_topology(dict(spec, services=[{"unit": "web.service", "netns": "a:b"}]))
    assert caught.value.obj == "services[0].netns" and "cannot be named in a unit file" in str(caught.value)


UNITS = [("web.service", True), ("web@blue.service", True), ("web-1_a:b.x.service", True),
         ("dbus-org.freedesktop.x.service", True), ("a\\x2db.service", True), ("web.service.service", True),
         ("web", False), ("web.timer", False), (".service", False), ("web@.service", False),
         ("web service", False), ("web.service\n", False), ("web\nx.service", False), ("wéb.service", False)]


@pytest.mark.parametrize("unit,valid", UNITS)
def test_unit_names_as_systemd_has_them(unit: str, valid: bool) -> None:
    assert bool(SERVICE_UNIT.fullmatch(unit)) is valid


def _role_rule(name: str) -> Optional[str]:
    role_vars = yaml.safe_load((ROOT / "roles" / "topology" / "vars" / "main.yml").read_text())
    return role_vars.get(name)


def test_the_role_checks_the_engines_rules() -> None:
    """The role validates unit and namespace names itself before they go into paths (its first
    change, a package install, comes before the module's validation): the same patterns."""
    assert _role_rule("topology_service_unit_rule") == SERVICE_UNIT.pattern
    assert _role_rule("topology_service_netns_rule") == SERVICE_NETNS.pattern
    assert re.compile(SERVICE_NETNS.pattern).fullmatch("web")
