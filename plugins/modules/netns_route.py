#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netns_route
short_description: Manage routes inside a network namespace
version_added: 0.1.0
description:
  - Adds, replaces or removes IPv4 and IPv6 routes in a named namespace or the root namespace, over netlink.
  - A route's identity is (destination, table, metric). Declaring another gateway, device, scope,
    source or onlink for the same identity replaces the route in place (one route, never two).
  - Gateways must be on a subnet of an address in the namespace unless I(onlink) is set (or the
    gateway is IPv6 link-local); this is checked before anything changes.
  - With I(exclusive), routes of the named tables (and families) that are not declared are removed;
    routes the kernel made for addresses (proto kernel) and IPv6 link-local/multicast routes never are.
author:
  - linuxnet.netns contributors (!UNKNOWN)
extends_documentation_fragment:
  - linuxnet.netns.attributes
  - linuxnet.netns.managed_host
  - linuxnet.netns.namespace
options:
  routes:
    description: The routes.
    type: list
    elements: dict
    required: true
    suboptions:
      dst:
        description: Destination network, an address (host route) or C(default) (IPv4, or IPv6 when I(via) is IPv6).
        type: str
        default: default
      via:
        description: Gateway address.
        type: str
      dev:
        description: Output device.
        type: str
      metric:
        description: Route metric (priority). Defaults to 0 for IPv4 and 1024 for IPv6, as the kernel does.
        type: int
      table:
        description: Routing table, C(main), C(default) or a number (not C(local)).
        type: raw
        default: main
      scope:
        description: C(global), C(site), C(link), C(host), C(nowhere) or a number.
        type: raw
      onlink:
        description: Take the gateway as directly reachable on I(dev) even if no subnet says so.
        type: bool
        default: false
      src:
        description:
          - Preferred source address, one the namespace has. An IPv6 one must no longer be tentative,
            so add it with C(nodad) when the route follows at once.
        type: str
  state:
    description: C(present) adds or replaces the routes; C(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description: Remove undeclared routes of the declared tables and families (see above).
    type: bool
    default: false
seealso:
  - module: linuxnet.netns.netns_addr
"""

EXAMPLES = r"""
- name: Default route inside msb
  linuxnet.netns.netns_route:
    netns: msb
    routes:
      - dst: default
        via: 192.168.50.3

- name: IPv6 default and a policy-routing table, and nothing else in table 100
  linuxnet.netns.netns_route:
    netns: msb
    exclusive: true
    routes:
      - {dst: default, via: "fd00:50::1"}
      - {dst: 10.0.0.0/8, dev: veth1, table: 100, scope: link}
"""

RETURN = r"""
routes:
  description: The routes of the tables the task names, after the task.
  returned: always
  type: list
  elements: dict
  sample: [{"dst": "default", "table": 254, "metric": 0, "via": "192.168.50.3", "dev": "veth1"}]
changes:
  description: Each change made (or that would be made in check mode), in order.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "route", "action": "update", "object": "default table 254 metric 0 in netns msb",
            "before": {"via": "192.168.50.1"}, "after": {"via": "192.168.50.3"}}]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.linuxnet.netns.plugins.module_utils._module_runner import run_module
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.route import plan_routes, route_report, route_spec

ROUTE_OPTIONS = dict(
    dst=dict(type="str", default="default"),
    via=dict(type="str"),
    dev=dict(type="str"),
    metric=dict(type="int"),
    table=dict(type="raw", default="main"),
    scope=dict(type="raw"),
    onlink=dict(type="bool", default=False),
    src=dict(type="str"),
)

ARGUMENT_SPEC = dict(
    netns=dict(type="str"),
    routes=dict(type="list", elements="dict", required=True, options=ROUTE_OPTIONS),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    exclusive=dict(type="bool", default=False),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def spec():
        return route_spec(**module.params)

    run_module(
        module,
        planner=lambda kernel, pending: plan_routes(kernel, spec(), pending),
        reporter=lambda kernel: route_report(kernel, spec()),
        missing_library_msg=missing_required_lib("pyroute2"),
    )


if __name__ == "__main__":
    main()
