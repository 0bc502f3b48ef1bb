#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netns
short_description: Manage a named Linux network namespace, its sysctls and its DNS
version_added: 0.1.0
description:
  - Creates or deletes a named network namespace the way C(ip netns add) does, bound at
    C(/run/netns/NAME) so that C(ip netns list) and C(ip netns exec) see it.
  - Talks to the kernel over netlink (pyroute2) and the nsfs; never parses C(ip) output and
    never creates a namespace while only reading or in check mode.
  - Names are compared exactly; C(mario) is not present just because C(mario2) is.
  - Deleting a namespace waits until the kernel has removed the veth ends it held, so the same
    veth names can be created again right away.
  - Per-namespace C(net.*) sysctls and C(/etc/netns/NAME/resolv.conf) are managed too.
author:
  - linuxnet.netns contributors (!UNKNOWN)
extends_documentation_fragment:
  - linuxnet.netns.attributes
  - linuxnet.netns.managed_host
options:
  name:
    description:
      - Name of the namespace, a file name under C(/run/netns).
      - Must not be empty, contain C(/), NUL or whitespace, be C(.) or C(..), start with C(-),
        or be longer than 255 bytes.
    type: str
    required: true
  state:
    description:
      - C(present) creates the namespace if needed; C(absent) deletes it (and the
        C(resolv.conf) this module wrote for it).
    type: str
    choices: [present, absent]
    default: present
  sysctls:
    description:
      - C(net.*) sysctls to set inside the namespace, for example C(net.ipv4.ip_forward=1).
      - A new namespace starts from kernel defaults for most C(net.*) sysctls, not the host's values.
      - Keys outside C(net.) are refused because they are not per namespace.
      - Use C(/) as separator for keys whose components contain dots
        (C(net/ipv4/conf/eth0.10/forwarding)).
      - Each value that differs is first set in a throw-away namespace and read back, so a key that
        a new namespace lacks, a read-only key or a value the kernel refuses fails before any change.
    type: dict
  nameservers:
    description:
      - Write these nameservers to C(/etc/netns/NAME/resolv.conf), which C(ip netns exec) bind-mounts
        over C(/etc/resolv.conf). An empty list removes the file this module wrote.
      - Omit to leave any existing file alone.
    type: list
    elements: str
  loopback:
    description:
      - State of the namespace's C(lo). A new namespace has it down, which breaks anything
        that talks to 127.0.0.1 inside; C(unmanaged) leaves it as it is.
    type: str
    choices: [up, down, unmanaged]
    default: up
notes:
  - A namespace held by a process keeps existing in the kernel after its name is deleted;
    the returned C(pids) show who holds it.
seealso:
  - module: linuxnet.netns.veth
  - module: linuxnet.netns.netns_addr
"""

EXAMPLES = r"""
- name: Namespace msb with forwarding and its own DNS
  linuxnet.netns.netns:
    name: msb
    sysctls:
      net.ipv4.ip_forward: 1
      net.ipv6.conf.all.forwarding: 1
    nameservers: [192.0.2.53]

- name: Remove it
  linuxnet.netns.netns:
    name: msb
    state: absent
"""

RETURN = r"""
netns:
  description: The namespace after the task.
  returned: always
  type: dict
  contains:
    name:
      description: Its name.
      type: str
      sample: msb
    exists:
      description: Whether it exists (false after C(state=absent), and in check mode before creation).
      type: bool
      sample: true
    id:
      description: Its identity, the inode number that C(lsns) and C(/proc/PID/ns/net) show.
      type: int
      returned: when it exists
      sample: 4026532577
    path:
      description: Where it is bound.
      type: str
      returned: when it exists
      sample: /run/netns/msb
    pids:
      description: Processes whose network namespace it is.
      type: list
      elements: int
      returned: when it exists
      sample: [4242]
    sysctls:
      description: Current values of the sysctls given in I(sysctls).
      type: dict
      returned: when it exists
      sample: {"net.ipv4.ip_forward": "1"}
    nameservers:
      description: Nameservers in its C(resolv.conf), or null when there is no such file.
      type: list
      elements: str
      returned: always
      sample: ["192.0.2.53"]
changes:
  description: Each change made (or that would be made in check mode), in order.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "netns", "action": "create", "object": "msb", "before": null, "after": {"name": "msb"}}]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.linuxnet.netns.plugins.module_utils._module_runner import run_module
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.namespace import (
    LOOPBACK_STATES,
    namespace_report,
    namespace_spec,
    plan_namespace,
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    sysctls=dict(type="dict"),
    nameservers=dict(type="list", elements="str"),
    loopback=dict(type="str", choices=list(LOOPBACK_STATES), default="up"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    run_module(
        module,
        planner=lambda kernel, _pending: plan_namespace(kernel, namespace_spec(
            params["name"], params["state"], params["sysctls"], params["nameservers"],
            LOOPBACK_STATES[params["loopback"]])),
        reporter=lambda kernel: {"netns": namespace_report(kernel, params["name"], params["sysctls"])},
        missing_library_msg=missing_required_lib("pyroute2"),
    )


if __name__ == "__main__":
    main()
