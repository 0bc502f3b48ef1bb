#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: topology
short_description: Apply a whole network-namespace topology in one call
version_added: 0.1.0
description:
  - Validates a complete topology (format version 1, see C(docs/topology-format.md) in the collection)
    before changing anything, then brings the kernel to it in one pass through the engine
    (namespaces, links, addresses, routes, policy routing rules, iptables rules, nftables tables; the
    reverse order for removal).
  - Everything is planned before anything is applied, so check mode predicts a whole topology on a
    host where none of it exists yet. The kernel is read back after applying; a difference is an error.
  - Records which objects the topology manages under I(state_dir); I(purge) removes objects this
    topology created earlier but no longer declares. Namespaces and links that existed before the
    topology first declared them are never removed, not by purge and not by I(state=absent).
  - A successful result's C(invocation.module_args.topology) gives the topology's name, its numbers
    of namespaces and links and the SHA-256 of its JSON (sorted keys) rather than the whole topology
    again, which Ansible would copy several times per host (~35 ms at 100 namespaces); a failure
    repeats the arguments in full.
author:
  - linuxnet.netns contributors (!UNKNOWN)
requirements:
  - iptables (for rules) on the managed host
  - nftables (for C(nftables) tables) on the managed host; with python3-nftables the engine uses libnftables
    in its own process, without it one C(nft) per namespace
extends_documentation_fragment:
  - linuxnet.netns.attributes
  - linuxnet.netns.managed_host
options:
  topology:
    description:
      - The topology. Keys C(name) (required), C(version) (1), C(namespaces), C(links), C(host) and C(services).
      - C(namespaces) is a list of C(name), C(sysctls), C(nameservers), C(loopback), C(addresses),
        C(routes), C(rules), C(iptables) and C(nftables) (whole tables, each C(family), C(table), C(definition));
        C(host) has C(addresses), C(routes), C(rules), C(iptables) and C(nftables) for the root namespace.
      - C(rules) is a list of policy routing rules, each C(priority) (required, 1..32765), C(table)
        (C(main) or a number; routes go into it with their C(table)) and what it selects, C(from), C(to),
        C(iif), C(oif), C(fwmark) and C(fwmask) (C(family) inet or inet6 when neither C(from) nor C(to) says
        it). A rule is known by its family, priority and selector; one of that key looking up another table
        is made to match, and the kernel's default rules are never touched.
      - C(links) is a list of veth pairs (C(type=veth), C(name), C(netns), C(peer), C(peer_netns), ...),
        bridges (C(type=bridge), C(ports)), vlans (C(type=vlan), C(parent), C(id)), macvlans
        (C(type=macvlan), C(parent), C(mode)), vxlans (C(type=vxlan), C(id), C(remote) or C(group),
        C(local), C(dev), C(port), C(underlay_netns), created there and moved into C(netns) so that the UDP
        socket stays on the underlay) and WireGuard devices (C(type=wireguard), C(underlay_netns),
        C(private_key_file), C(listen_port), C(peers); see docs/topology-format.md); C(netns) null means the
        root namespace. Host devices (C(type=device), C(name), C(netns), C(match) with exactly one of
        C(name) or C(mac)) are existing links (a NIC) moved from the root namespace into C(netns) and
        renamed C(name) there; teardown and purge move them back under their original name before a
        namespace is deleted.
      - C(services) is a list of C(unit) (a systemd service such as C(web.service)), C(netns) (a declared
        namespace), C(dns) and C(restart_on_recreate). This module validates it and keeps it with the
        topology but does not act on it; the C(linuxnet.netns.topology) role writes the systemd drop-ins.
    type: dict
    required: true
  state:
    description:
      - C(present) applies the topology; C(absent) tears it down (namespaces first, which removes
        their veth ends fastest).
    type: str
    choices: [present, absent]
    default: present
  purge:
    description:
      - Remove objects that this topology created before and no longer declares.
    type: bool
    default: false
  state_dir:
    description:
      - Where ownership records (C(NAME.owned.json)) and the iptables tables remembered between runs
        (C(NAME.tables.json), a cache described in docs/topology-format.md) are kept.
    type: path
    default: /var/lib/linuxnet-netns
  rollback:
    description:
      - When a change fails part-way (the kernel refuses something), reverse every change this run had
        made, newest first, so the host is as before the run; the error says what was rolled back.
      - Deleted namespaces and links cannot be brought back; the error lists them as not rolled back.
      - With C(false) the host stays as far as the run got, and the error lists each change it made.
    type: bool
    default: true
seealso:
  - module: linuxnet.netns.netns
  - module: linuxnet.netns.veth
"""

EXAMPLES = r"""
- name: The reference topology in one task
  linuxnet.netns.topology:
    topology:
      name: demo
      namespaces:
        - name: msb
          sysctls: {net.ipv4.ip_forward: 1}
          addresses: [{dev: veth1, address: 192.168.50.2/24}]
          routes: [{dst: default, via: 192.168.50.3}]
          iptables:
            - table: filter
              chains: [{name: INPUT, rules: ["-p tcp --dport 22 -j ACCEPT"]}]
      links:
        - {type: veth, name: veth0, peer: veth1, peer_netns: msb}
      host:
        addresses: [{dev: veth0, address: 192.168.50.3/24}]

- name: Policy routing - the namespace's 10.1.0.128/25 and marked packets use table 100
  linuxnet.netns.topology:
    topology:
      name: pbr
      namespaces:
        - name: edge
          addresses: [{dev: up2, address: 203.0.113.2/30}, {dev: lan, address: 10.1.0.1/24}]
          routes: [{dst: default, via: 203.0.113.1, table: 100}]
          rules:
            - {priority: 1000, from: 10.1.0.128/25, table: 100}
            - {priority: 1010, fwmark: "0x1", table: 100}
      links:
        - {type: veth, name: up2, netns: edge, peer: edge-up2}
        - {type: veth, name: lan, netns: edge, peer: edge-lan}
"""

RETURN = r"""
summary:
  description: Number of changes per kind and action.
  returned: always
  type: dict
  sample: {"netns": {"create": 1}, "link": {"create": 1, "update": 2}, "address": {"create": 2}}
changes:
  description: Each change made (or that would be made in check mode), in order.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "netns", "action": "create", "object": "msb", "before": null, "after": {"name": "msb"}}]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.linuxnet.netns.plugins.module_utils._module_runner import run_converger
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.topology import (
    converge_topology, described, summary)

ARGUMENT_SPEC = dict(
    topology=dict(type="dict", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    purge=dict(type="bool", default=False),
    state_dir=dict(type="path", default="/var/lib/linuxnet-netns"),
    rollback=dict(type="bool", default=True),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    result = {}

    def converger(kernel, check_mode):
        changes = converge_topology(kernel, params["topology"], params["state"], params["purge"],
                                    check_mode, params["state_dir"], params["rollback"])
        result["summary"] = summary(changes)
        result["invocation"] = {"module_args": {**params, "topology": described(params["topology"])}}
        return changes

    run_converger(module, converger, lambda kernel: result, missing_required_lib("pyroute2"))


if __name__ == "__main__":
    main()
