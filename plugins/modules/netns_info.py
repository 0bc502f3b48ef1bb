#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netns_info
short_description: Everything the kernel holds about network namespaces, in one place
version_added: 0.1.0
description:
  - Reads, over netlink, what C(ip netns list), C(lsns -t net), C(ip netns identify), C(ls -i /run/netns),
    C(ip -n NS addr), C(ip -n NS route show table all) and C(ip netns exec NS iptables-save) show, for every
    named namespace or the ones in I(names), for the root namespace, and lists the anonymous namespaces that
    processes hold without a name under C(/run/netns).
  - Changes nothing and never creates a namespace (a missing name is reported in C(missing)).
  - Also returns C(spec), the namespaces as a topology spec (format version 1) that the
    M(linuxnet.netns.topology) module and role apply back.
author:
  - linuxnet.netns contributors (!UNKNOWN)
requirements:
  - iptables (for rules) on the managed host
extends_documentation_fragment:
  - linuxnet.netns.attributes.info_module
  - linuxnet.netns.managed_host
options:
  names:
    description:
      - Only these named namespaces (exact names). All named namespaces when omitted.
    type: list
    elements: str
  iptables:
    description:
      - Read the iptables rules of each namespace (one C(iptables-save) and C(ip6tables-save) per namespace).
    type: bool
    default: true
  nftables:
    description:
      - What to read of each namespace's nftables tables (through libnftables in the module's process, or one
        C(nft) per namespace where the python3-nftables binding is missing).
      - C(tables) lists each table's family and name, C(ruleset) adds its objects as C(nft -j list ruleset)
        prints them (without handles), C(none) reads nothing.
    type: str
    choices: [none, tables, ruleset]
    default: tables
  spec_name:
    description:
      - The I(name) of the returned topology spec.
    type: str
    default: captured
notes:
  - Sysctls are reported when they differ from a new namespace's value on this kernel (read in a throw-away
    namespace), for these keys, C(net.ipv4.ip_forward), C(net.ipv4.conf.all.rp_filter),
    C(net.ipv4.conf.default.rp_filter), C(net.ipv4.ip_unprivileged_port_start), C(net.ipv4.ping_group_range),
    C(net.ipv6.conf.all.forwarding), C(net.ipv6.conf.all.disable_ipv6), C(net.ipv6.conf.default.disable_ipv6).
  - In C(spec), the root namespace contributes only the addresses and routes of links that have an end in
    a returned namespace; the host's own interfaces, rules and other addresses are never part of it.
    A physical NIC (a link without a kind) in a returned namespace is a host device (C(type=device))
    matched by its MAC.
"""

EXAMPLES = r"""
- name: What namespaces does this host have?
  linuxnet.netns.netns_info:
  register: netns

- name: Which processes live in msb, and what is its veth's peer?
  ansible.builtin.debug:
    msg: >-
      pids {{ (netns.namespaces | selectattr('name', 'equalto', 'msb') | first).pids }},
      peer {{ (netns.namespaces | selectattr('name', 'equalto', 'msb') | first).links
              | selectattr('kind', 'equalto', 'veth') | map(attribute='peer') | list }}

- name: Capture two namespaces as a topology spec
  linuxnet.netns.netns_info:
    names: [left, right]
    spec_name: lab
  register: captured

- name: And build the same on another host
  linuxnet.netns.topology:
    topology: "{{ hostvars['lab1'].captured.spec }}"
  delegate_to: lab2
"""

RETURN = r"""
namespaces:
  description: The named namespaces, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name under C(/run/netns).
      type: str
    id:
      description: Inode number of the namespace (what C(lsns) and C(/proc/PID/ns/net) show).
      type: int
    path:
      description: Its bind mount.
      type: str
    nsid:
      description: The id the root namespace uses for it (C(ip netns list)'s C(id)), null when none is assigned.
      type: int
    pids:
      description: Processes whose network namespace it is.
      type: list
      elements: int
    nameservers:
      description: Servers in C(/etc/netns/NAME/resolv.conf), null without that file.
      type: list
      elements: str
    links:
      description:
        - Links with C(name), C(index), C(kind) (null for loopback and physical), C(state) (up/down), C(mtu),
          C(mac), C(master) (a bridge's name), C(peer) (veth; netns and name of the other end, resolved across
          namespaces), C(parent) (vlan/macvlan; netns and name), C(vlan_id) or C(mode), C(vxlan) (id,
          remote or group, local, dev, port, underlay_netns); a WireGuard device also C(type=wireguard) and
          C(wireguard) (C(backend) kernel or userspace, C(listen_port), C(peers), C(uapi_name) for
          wireguard-go; never a private key).
      type: list
      elements: dict
    addresses:
      description: Addresses as C({dev, address}) (CIDR), link-local ones included.
      type: list
      elements: dict
    routes:
      description:
        - Unicast routes of every table but C(local), with C(dst), C(table), C(metric), C(via), C(dev), C(scope),
          C(src) and C(protocol).
      type: list
      elements: dict
    rules:
      description:
        - Policy routing rules of both families, the kernel's default ones included, with C(family) (inet or
          inet6), C(priority), C(table) and those of C(from), C(to), C(iif), C(oif), C(fwmark), C(fwmask) they
          select on; C(other) is true for a rule that also uses a selector or action a topology cannot declare
          (such as C(ipproto), C(not), C(goto) or C(blackhole)).
      type: list
      elements: dict
    sysctls:
      description: Documented sysctls whose value differs from a new namespace's.
      type: dict
    iptables:
      description: "C({ipv4|ipv6: {table: {chain: {policy, rules}}}}) of the tables in use; C(policy) null for user chains."
      type: dict
    nftables:
      description:
        - "C([{family, table}]) of the nftables tables in the namespace (with C(nftables=ruleset) each also has
          C(ruleset), its objects in nft's JSON); null where nftables cannot be read."
      type: list
      elements: dict
host:
  description: The root namespace (links, addresses, routes, rules, sysctls, iptables as above), its id and how many processes it holds.
  returned: always
  type: dict
anonymous:
  description: Namespaces held by processes that have no name under /run/netns, as {id, pids}.
  returned: always
  type: list
  elements: dict
missing:
  description: Names in I(names) that do not exist.
  returned: always
  type: list
  elements: str
spec:
  description: The returned namespaces as a topology spec (format version 1) that applies back.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.report.info import gather, spec_from_info
from ansible_collections.linuxnet.netns.plugins.module_utils._module_runner import run_reader
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.validation import check_netns_name

ARGUMENT_SPEC = dict(
    names=dict(type="list", elements="str"),
    iptables=dict(type="bool", default=True),
    nftables=dict(type="str", default="tables", choices=["none", "tables", "ruleset"]),
    spec_name=dict(type="str", default="captured"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params

    def reader(kernel):
        names = params["names"]
        if names is not None:
            names = [check_netns_name(name, "names[%d]" % i) for i, name in enumerate(names)]
        info = gather(kernel, names, params["iptables"], params["nftables"])
        info["spec"] = spec_from_info(info, params["spec_name"])
        return info

    run_reader(module, reader, missing_required_lib("pyroute2"))


if __name__ == "__main__":
    main()
