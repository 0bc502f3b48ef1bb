#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netns_addr
short_description: Manage IPv4 and IPv6 addresses on a device inside a network namespace
version_added: 0.1.0
description:
  - Adds or removes addresses on one device in a named namespace or the root namespace, over netlink.
  - Addresses are keyed by (device, IP); the same IP with another prefix length is replaced.
  - With I(exclusive), addresses on the device that are not listed are removed; IPv6 link-local
    addresses stay unless I(purge_link_local) is set.
author:
  - linuxnet.netns contributors (!UNKNOWN)
extends_documentation_fragment:
  - linuxnet.netns.attributes
  - linuxnet.netns.managed_host
  - linuxnet.netns.namespace
options:
  dev:
    description: The device (at most 15 bytes).
    type: str
    required: true
  addresses:
    description: Addresses in CIDR notation, IPv4 or IPv6 (C(192.168.50.2/24), C(fd00::2/64)).
    type: list
    elements: str
    required: true
  state:
    description: C(present) adds the addresses; C(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description: Remove addresses on I(dev) that are not listed (with I(state=present)).
    type: bool
    default: false
  purge_link_local:
    description: With I(exclusive), also remove IPv6 link-local (fe80::/10) addresses.
    type: bool
    default: false
  nodad:
    description:
      - Add IPv6 addresses without duplicate address detection, so they are usable at once
        (otherwise they are tentative for about a second, and routes with C(src) fail until then).
    type: bool
    default: false
  dev_up:
    description: Bring I(dev) up (C(true)) or down (C(false)); omit to leave it.
    type: bool
  lo_up:
    description: Bring the namespace's C(lo) up (C(true)) or down (C(false)); omit to leave it.
    type: bool
notes:
  - In check mode a namespace or device that does not exist yet is assumed to be created by an
    earlier task (with a warning), so a whole play can be checked on an empty host.
seealso:
  - module: linuxnet.netns.netns_route
"""

EXAMPLES = r"""
- name: Address inside msb, device and loopback up
  linuxnet.netns.netns_addr:
    netns: msb
    dev: veth1
    addresses: [192.168.50.2/24, fd00:50::2/64]
    nodad: true
    dev_up: true
    lo_up: true

- name: Exactly these addresses on veth0 in the root namespace
  linuxnet.netns.netns_addr:
    dev: veth0
    addresses: [192.168.50.3/24]
    exclusive: true
"""

RETURN = r"""
addresses:
  description: Addresses of the device after the task.
  returned: always
  type: list
  elements: dict
  sample: [{"address": "192.168.50.2/24", "tentative": false, "dadfailed": false}]
exists:
  description: Whether the device exists.
  returned: always
  type: bool
changes:
  description: Each change made (or that would be made in check mode), in order.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "address", "action": "create", "object": "192.168.50.2/24 on veth1 in netns msb",
            "before": null, "after": {"address": "192.168.50.2/24"}}]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.address import address_report, address_spec, plan_addresses
from ansible_collections.linuxnet.netns.plugins.module_utils._module_runner import run_module

ARGUMENT_SPEC = dict(
    netns=dict(type="str"),
    dev=dict(type="str", required=True),
    addresses=dict(type="list", elements="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    exclusive=dict(type="bool", default=False),
    purge_link_local=dict(type="bool", default=False),
    nodad=dict(type="bool", default=False),
    dev_up=dict(type="bool"),
    lo_up=dict(type="bool"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def spec():
        return address_spec(**module.params)

    run_module(
        module,
        planner=lambda kernel, pending: plan_addresses(kernel, spec(), pending),
        reporter=lambda kernel: address_report(kernel, spec()),
        missing_library_msg=missing_required_lib("pyroute2"),
    )


if __name__ == "__main__":
    main()
