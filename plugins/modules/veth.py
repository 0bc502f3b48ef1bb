#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: veth
short_description: Manage a veth pair whose ends live in any network namespaces
version_added: 0.1.0
description:
  - Creates a veth pair in one netlink request with each end directly in its namespace
    (never create-then-move), sets MTU, MAC and up/down per end, or removes the pair.
  - Ends are identified across namespaces by the peer's ifindex and IFLA_LINK_NETNSID, not by name.
  - An existing pair whose end was moved to another namespace is converged by moving that end back.
  - A same-named link that is not this pair's end (another kind of link, or a veth paired with
    something else) is refused with a clear message and left alone.
  - Namespaces are never created here; use M(linuxnet.netns.netns) first.
author:
  - linuxnet.netns contributors (!UNKNOWN)
extends_documentation_fragment:
  - linuxnet.netns.attributes
  - linuxnet.netns.managed_host
options:
  name:
    description: Name of the first end (at most 15 bytes).
    type: str
    required: true
  peer:
    description: Name of the other end (at most 15 bytes).
    type: str
    required: true
  netns:
    description: Namespace of the first end; omit for the root namespace.
    type: str
  peer_netns:
    description: Namespace of the other end; omit for the root namespace.
    type: str
  mtu:
    description: MTU of the first end (68..65535); omit to leave it as the kernel sets it.
    type: int
  peer_mtu:
    description: MTU of the other end.
    type: int
  mac:
    description: MAC address of the first end (unicast); omit for a random one.
    type: str
  peer_mac:
    description: MAC address of the other end.
    type: str
  up:
    description: Whether the first end is up.
    type: bool
    default: true
  peer_up:
    description: Whether the other end is up.
    type: bool
    default: true
  state:
    description:
      - C(present) creates or converges the pair; C(absent) deletes it (deleting one end deletes both).
      - With C(absent), a namespace that does not exist means that end is gone.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: linuxnet.netns.netns
  - module: linuxnet.netns.netns_addr
"""

EXAMPLES = r"""
- name: veth0 in the root namespace, veth1 inside msb
  linuxnet.netns.veth:
    name: veth0
    peer: veth1
    peer_netns: msb

- name: A pair between two namespaces with a smaller MTU
  linuxnet.netns.veth:
    name: ab
    netns: red
    peer: ba
    peer_netns: blue
    mtu: 1400
    peer_mtu: 1400

- name: Remove it
  linuxnet.netns.veth:
    name: ab
    netns: red
    peer: ba
    peer_netns: blue
    state: absent
"""

RETURN = r"""
end:
  description: The first end after the task.
  returned: always
  type: dict
  sample: {"name": "veth0", "netns": null, "exists": true, "ifindex": 12, "kind": "veth",
           "mtu": 1500, "mac": "6e:1a:...", "state": "up"}
peer:
  description: The other end after the task (same keys).
  returned: always
  type: dict
  sample: {"name": "veth1", "netns": "msb", "exists": true, "ifindex": 2, "kind": "veth",
           "mtu": 1500, "mac": "b2:0c:...", "state": "up"}
changes:
  description: Each change made (or that would be made in check mode), in order.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "link", "action": "create", "object": "veth0 in root namespace",
            "before": null, "after": {"type": "veth", "peer": "veth1", "peer_netns": "msb"}}]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.linuxnet.netns.plugins.module_utils._module_runner import run_module
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.veth import plan_veth, veth_report, veth_spec

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    peer=dict(type="str", required=True),
    netns=dict(type="str"),
    peer_netns=dict(type="str"),
    mtu=dict(type="int"),
    peer_mtu=dict(type="int"),
    mac=dict(type="str"),
    peer_mac=dict(type="str"),
    up=dict(type="bool", default=True),
    peer_up=dict(type="bool", default=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    spec_args = dict(module.params)
    run_module(
        module,
        planner=lambda kernel, pending: plan_veth(kernel, veth_spec(field="veth", **spec_args), pending),
        reporter=lambda kernel: veth_report(kernel, veth_spec(field="veth", **spec_args)),
        missing_library_msg=missing_required_lib("pyroute2"),
    )


if __name__ == "__main__":
    main()
