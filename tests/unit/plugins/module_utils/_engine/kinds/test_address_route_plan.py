"""Table-driven tests of the pure address and route planners."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import List

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.address import address_spec, plan_address_set
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.address_state import Address
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.route import Route, parse_route, plan_route_set, route_spec


def have(*items: str) -> List[Address]:
    return [Address(item.split(" ")[0], ipaddress.ip_interface(item.split(" ")[1])) for item in items]


@pytest.mark.parametrize("current,wanted,options,expected", [
    ([], ["10.0.0.1/24"], {}, [("create", "10.0.0.1/24")]),
    (["d 10.0.0.1/24"], ["10.0.0.1/24"], {}, []),
    (["d 10.0.0.1/24"], ["10.0.0.1/16"], {}, [("replace", "10.0.0.1/16")]),
    (["d 10.0.0.9/24"], ["10.0.0.1/24"], {}, [("create", "10.0.0.1/24")]),
    (["d 10.0.0.9/24"], ["10.0.0.1/24"], {"exclusive": True}, [("delete", "10.0.0.9/24"), ("create", "10.0.0.1/24")]),
    (["d fe80::1/64"], ["10.0.0.1/24"], {"exclusive": True}, [("create", "10.0.0.1/24")]),
    (["d fe80::1/64"], [], {"exclusive": True, "purge_link_local": True}, [("delete", "fe80::1/64")]),
    (["other 10.0.0.9/24"], ["10.0.0.1/24"], {"exclusive": True}, [("create", "10.0.0.1/24")]),
    (["d 10.0.0.1/24", "d 10.0.0.2/24"], ["10.0.0.1/24"], {"state": "absent"}, [("delete", "10.0.0.1/24")]),
    ([], ["10.0.0.1/24"], {"state": "absent"}, []),
    ([], ["fd00::1/64"], {"nodad": True}, [("create", "fd00::1/64")]),
])
def test_plan_address_set(current: List[str], wanted: List[str], options: dict, expected: list) -> None:
    spec = address_spec("ns", "d", wanted, **options)
    changes = plan_address_set(spec, have(*current))
    assert [(c.action, (c.after or c.before)["address"]) for c in changes] == expected


def route(proto: int = 4, **kw: object) -> Route:
    """A route as the kernel reports it (proto 4 = static, 2 = kernel)."""
    return dataclasses.replace(parse_route(kw, "r"), proto=proto)


@pytest.mark.parametrize("current,wanted,options,expected", [
    ([], [{"via": "10.0.0.1"}], {}, [("create", "default table 254 metric 0")]),
    ([route(via="10.0.0.1")], [{"via": "10.0.0.1"}], {}, []),
    ([route(via="10.0.0.1")], [{"via": "10.0.0.2"}], {}, [("update", "default table 254 metric 0")]),
    ([route(via="10.0.0.1")], [{"via": "10.0.0.1", "metric": 5}], {}, [("create", "default table 254 metric 5")]),
    ([route(via="10.0.0.1", dev="e")], [{"via": "10.0.0.1"}], {}, []),
    ([], [{"via": "fd00::1"}], {}, [("create", "default table 254 metric 1024")]),
    ([route(dst="10.1.0.0/16", via="10.0.0.1")], [{"via": "10.0.0.1"}], {"exclusive": True},
     [("delete", "10.1.0.0/16 table 254 metric 0"), ("create", "default table 254 metric 0")]),
    ([route(dst="10.0.0.0/24", dev="e", proto=2)], [{"via": "10.0.0.1"}], {"exclusive": True},
     [("create", "default table 254 metric 0")]),
    ([route(dst="10.1.0.0/16", via="10.0.0.1", table=7)], [{"via": "10.0.0.1"}], {"exclusive": True},
     [("create", "default table 254 metric 0")]),
    ([route(via="10.0.0.1")], [{"via": "10.0.0.1"}], {"state": "absent"}, [("delete", "default table 254 metric 0")]),
])
def test_plan_route_set(current: List[Route], wanted: list, options: dict, expected: list) -> None:
    changes = plan_route_set(route_spec("ns", wanted, **options), current)
    assert [(c.action, c.key.rsplit(" in ", 1)[0]) for c in changes] == expected
