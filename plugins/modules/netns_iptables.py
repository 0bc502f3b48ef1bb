#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netns_iptables
short_description: Manage iptables rules, chains and policies inside a network namespace
version_added: 0.1.0
description:
  - Manages rules of one table (filter, nat, mangle, raw; IPv4 or IPv6) inside a named namespace,
    or the root namespace when I(netns) is omitted.
  - Rules are compared in the form C(iptables-save) prints them. Declared rules are canonicalised by
    iptables itself in a throw-away namespace, so C(-p tcp --dport 22 -j ACCEPT) matches the saved
    C(-p tcp -m tcp --dport 22 -j ACCEPT), and an invalid rule fails before anything changes.
  - The table is changed with one C(iptables-restore) of its whole new content (packet counters kept),
    so a ruleset is never half-applied. Rules nobody declared stay untouched and in their places.
    When the table holds a rule that C(iptables-restore) cannot read back as C(iptables-save) prints
    it (someone else's comment with a line break), or chains made with nft that C(iptables-save)
    leaves out, only the changes are written, in one C(iptables-restore --noflush) transaction, and
    those stay exactly as they are. A table C(iptables-save) does not show at all is not changed.
  - A rule with a word that makes iptables print its help or version instead of taking the rule
    (C(-h), C(-V), C(--help), C(-vh)), or skip it (C(-6) in an IPv4 table), or a line break, is refused.
  - Declared rules keep their declared order; missing ones are inserted after the previous declared
    rule of the chain (at the end when there is none).
author:
  - linuxnet.netns contributors (!UNKNOWN)
requirements:
  - iptables (and ip6tables) on the managed host
extends_documentation_fragment:
  - linuxnet.netns.attributes
  - linuxnet.netns.managed_host
  - linuxnet.netns.namespace
options:
  ip_version:
    description: C(ipv4) uses iptables, C(ipv6) ip6tables.
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  table:
    description: The table.
    type: str
    choices: [filter, nat, mangle, raw]
    default: filter
  chains:
    description: Chains of the table with their rules.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Chain name; a chain that is not built in is created (a user chain).
        type: str
        required: true
      policy:
        description: Policy of a built-in chain.
        type: str
        choices: [ACCEPT, DROP]
      rules:
        description:
          - Rules in order, each in iptables syntax without C(-A CHAIN) (C(-p tcp --dport 22 -j ACCEPT)),
            or structured with keys C(protocol), C(source), C(destination), C(in_interface),
            C(out_interface), C(source_port), C(destination_port), C(ctstate), C(icmp_type), C(comment),
            C(match) (list of extra words), C(jump), C(goto), C(to_destination), C(to_source), C(to_ports).
          - A user chain that rules jump to must be listed too (it may have no rules).
        type: list
        elements: raw
        default: []
      exclusive:
        description: The chain holds exactly these rules; others in it are removed.
        type: bool
        default: false
  state:
    description:
      - C(present) ensures rules, chains and policies; C(absent) removes the listed rules, and deletes a
        listed user chain given without rules (refused while rules still jump to it).
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: linuxnet.netns.netns
"""

EXAMPLES = r"""
- name: Allow SSH into msb
  linuxnet.netns.netns_iptables:
    netns: msb
    chains:
      - name: INPUT
        rules:
          - -p tcp --dport 22 -j ACCEPT

- name: Masquerade what leaves the router namespace, drop forwarding by default
  linuxnet.netns.netns_iptables:
    netns: router
    table: nat
    chains:
      - name: POSTROUTING
        rules:
          - {source: 10.0.0.0/24, out_interface: up0, jump: MASQUERADE}

- name: A user chain for ICMPv6, the only rules of INPUT
  linuxnet.netns.netns_iptables:
    netns: msb
    ip_version: ipv6
    chains:
      - name: ICMP6
        rules: ["-p ipv6-icmp -j ACCEPT"]
      - name: INPUT
        policy: DROP
        exclusive: true
        rules: ["-j ICMP6", "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]
"""

RETURN = r"""
chains:
  description: The declared chains after the task, with policy (null for user chains) and rules as iptables-save prints them.
  returned: always
  type: dict
  sample: {"INPUT": {"policy": "ACCEPT", "rules": ["-p tcp -m tcp --dport 22 -j ACCEPT"]}}
changes:
  description: Each change made (or that would be made in check mode), one per table.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "iptables", "action": "update", "object": "ipv4 filter in netns msb",
            "before": {"INPUT": {"policy": "ACCEPT", "rules": []}},
            "after": {"INPUT": {"policy": "ACCEPT", "rules": ["-p tcp -m tcp --dport 22 -j ACCEPT"]}}}]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.iptables import iptables_report, iptables_spec, plan_iptables
from ansible_collections.linuxnet.netns.plugins.module_utils._module_runner import run_module

CHAIN_OPTIONS = dict(
    name=dict(type="str", required=True),
    policy=dict(type="str", choices=["ACCEPT", "DROP"]),
    rules=dict(type="list", elements="raw", default=[]),
    exclusive=dict(type="bool", default=False),
)

ARGUMENT_SPEC = dict(
    netns=dict(type="str"),
    ip_version=dict(type="str", choices=["ipv4", "ipv6"], default="ipv4"),
    table=dict(type="str", choices=["filter", "nat", "mangle", "raw"], default="filter"),
    chains=dict(type="list", elements="dict", required=True, options=CHAIN_OPTIONS),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def spec():
        return iptables_spec(**module.params, field="netns_iptables")

    run_module(
        module,
        planner=lambda kernel, pending: plan_iptables(kernel, spec(), pending),
        reporter=lambda kernel: iptables_report(kernel, spec()),
        missing_library_msg=missing_required_lib("pyroute2"),
    )


if __name__ == "__main__":
    main()
