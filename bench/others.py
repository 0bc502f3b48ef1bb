"""The contenders that are not ours: W(N) done with `ip -batch`, with a naive shell script (one `ip`
command per step, as tutorials teach), with today's Ansible way (community.general.ip_netns in a
loop plus command tasks), and ifstate's config for W_0(N). Each writes its input files into a work
directory and returns the command line (ifstate: the config's path) that does the work; bench/run.py
times that command as a whole process.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any, Dict, List

from workload import RULE, SYSCTL, items

SYSCTL_ARG = "%s=%s" % SYSCTL


def ip_batch(directory: str, prefix: str, count: int) -> List[str]:
    """One `ip -batch` file: namespaces, veths with the peer created in its namespace, root ends;
    the inner work through `netns exec` lines (a second `ip -batch` per namespace, sysctl,
    iptables-restore), since a batch cannot switch namespaces otherwise."""
    rules = os.path.join(directory, "rules.v4")
    with open(rules, "w") as handle:
        handle.write("*filter\n-A INPUT %s\nCOMMIT\n" % RULE)
    lines = []
    for item in items(prefix, count):
        inner = os.path.join(directory, item.netns + ".batch")
        with open(inner, "w") as handle:
            handle.write("link set lo up\naddr add %s dev %s\nlink set %s up\nroute add default via %s\n"
                         % (item.ns_address, item.ns_end, item.ns_end, item.gateway))
        lines += ["netns add %s" % item.netns,
                  "link add %s type veth peer name %s netns %s" % (item.root_end, item.ns_end, item.netns),
                  "addr add %s dev %s" % (item.root_address, item.root_end),
                  "link set %s up" % item.root_end,
                  "netns exec %s ip -batch %s" % (item.netns, inner),
                  "netns exec %s sysctl -qw %s" % (item.netns, SYSCTL_ARG),
                  "netns exec %s iptables-restore --noflush %s" % (item.netns, rules)]
    batch = os.path.join(directory, "root.batch")
    with open(batch, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return ["ip", "-batch", batch]


def naive_shell(directory: str, prefix: str, count: int) -> List[str]:
    """The tutorial way: one command per step, a veth created in the root and then moved."""
    lines = ["#!/bin/sh", "set -e"]
    for item in items(prefix, count):
        ns, temporary = item.netns, item.root_end + "p"  # the root has an eth0 already
        lines += ["ip netns add %s" % ns,
                  "ip link add %s type veth peer name %s" % (item.root_end, temporary),
                  "ip link set %s netns %s" % (temporary, ns),
                  "ip netns exec %s ip link set %s name %s" % (ns, temporary, item.ns_end),
                  "ip addr add %s dev %s" % (item.root_address, item.root_end),
                  "ip link set %s up" % item.root_end,
                  "ip netns exec %s ip addr add %s dev %s" % (ns, item.ns_address, item.ns_end),
                  "ip netns exec %s ip link set %s up" % (ns, item.ns_end),
                  "ip netns exec %s ip link set lo up" % ns,
                  "ip netns exec %s ip route add default via %s" % (ns, item.gateway),
                  "ip netns exec %s sysctl -qw %s" % (ns, SYSCTL_ARG),
                  "ip netns exec %s iptables -A INPUT %s" % (ns, RULE)]
    return _script(directory, "naive.sh", lines)


def naive_shell_teardown(directory: str, prefix: str, count: int) -> List[str]:
    """The tutorial order: each veth deleted first, then its namespace (the slow order)."""
    lines = ["#!/bin/sh", "set -e"]
    for item in items(prefix, count):
        lines += ["ip link del %s" % item.root_end, "ip netns del %s" % item.netns]
    return _script(directory, "naive-teardown.sh", lines)


def community_general(directory: str, prefix: str, count: int, python: str) -> List[str]:
    """A playbook as people write it today: ip_netns in a loop, then `command` tasks for the rest
    (ansible.builtin.iptables and sysctl have no namespace option)."""
    names = [dict(ns=i.netns, root=i.root_end, inner=i.ns_end, root_address=i.root_address,
                  address=i.ns_address, gateway=i.gateway) for i in items(prefix, count)]
    playbook = os.path.join(directory, "community-general.yml")
    with open(playbook, "w") as handle:
        handle.write(_CG_PLAYBOOK % {"items": repr(names), "sysctl": SYSCTL_ARG, "rule": RULE})
    return [os.path.join(os.path.dirname(python), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=" + python, playbook]


_CG_PLAYBOOK = """- hosts: localhost
  gather_facts: false
  vars:
    w: %(items)s
  tasks:
    - community.general.ip_netns: {name: "{{ item.ns }}"}
      loop: "{{ w }}"
    - command: ip link add {{ item.root }} type veth peer name {{ item.inner }} netns {{ item.ns }}
      loop: "{{ w }}"
    - command: ip addr add {{ item.root_address }} dev {{ item.root }}
      loop: "{{ w }}"
    - command: ip link set {{ item.root }} up
      loop: "{{ w }}"
    - command: ip -n {{ item.ns }} addr add {{ item.address }} dev {{ item.inner }}
      loop: "{{ w }}"
    - command: ip -n {{ item.ns }} link set {{ item.inner }} up
      loop: "{{ w }}"
    - command: ip -n {{ item.ns }} link set lo up
      loop: "{{ w }}"
    - command: ip -n {{ item.ns }} route add default via {{ item.gateway }}
      loop: "{{ w }}"
    - command: ip netns exec {{ item.ns }} sysctl -qw %(sysctl)s
      loop: "{{ w }}"
    - command: ip netns exec {{ item.ns }} iptables -A INPUT %(rule)s
      loop: "{{ w }}"
"""


def per_object_modules(directory: str, prefix: str, count: int) -> str:
    """Our per-object modules in loops (the ad hoc path); returns the playbook's path."""
    names = [dict(ns=i.netns, root=i.root_end, inner=i.ns_end, root_address=i.root_address,
                  address=i.ns_address, gateway=i.gateway) for i in items(prefix, count)]
    playbook = os.path.join(directory, "per-object.yml")
    with open(playbook, "w") as handle:
        handle.write(_OBJECTS_PLAYBOOK % {"items": repr(names), "key": SYSCTL[0], "value": SYSCTL[1],
                                          "rule": RULE})
    return playbook


_OBJECTS_PLAYBOOK = """- hosts: localhost
  gather_facts: false
  vars:
    w: %(items)s
  tasks:
    - linuxnet.netns.netns: {name: "{{ item.ns }}", sysctls: {"%(key)s": "%(value)s"}}
      loop: "{{ w }}"
    - linuxnet.netns.veth: {name: "{{ item.root }}", peer: "{{ item.inner }}", peer_netns: "{{ item.ns }}"}
      loop: "{{ w }}"
    - linuxnet.netns.netns_addr: {dev: "{{ item.root }}", addresses: ["{{ item.root_address }}"]}
      loop: "{{ w }}"
    - linuxnet.netns.netns_addr: {netns: "{{ item.ns }}", dev: "{{ item.inner }}", addresses: ["{{ item.address }}"], lo_up: true}
      loop: "{{ w }}"
    - linuxnet.netns.netns_route: {netns: "{{ item.ns }}", routes: [{dst: default, via: "{{ item.gateway }}"}]}
      loop: "{{ w }}"
    - linuxnet.netns.netns_iptables: {netns: "{{ item.ns }}", chains: [{name: INPUT, rules: ["%(rule)s"]}]}
      loop: "{{ w }}"
"""


def _script(directory: str, name: str, lines: List[str]) -> List[str]:
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return ["sh", path]


def quote(argv: List[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def ifstate_config(directory: str, prefix: str, count: int) -> str:
    """W_0(N) (W(N) without the firewall, which ifstate has no section for) as ifstate's config; returns
    its path. ifstate deletes every namespace its config does not name unless `parameters.ignore.netns`
    matches it: every name that does not start with this run's prefix is ignored (and ifstate runs in
    a sandbox of its own besides, bench/sandbox.py). The sysctl is conf/all/forwarding, which is
    net.ipv4.ip_forward (the kernel sets one with the other)."""
    root: Dict[str, Any] = {}
    namespaces: Dict[str, Any] = {}
    for item in items(prefix, count):
        root[item.root_end] = {"addresses": [item.root_address],
                               "link": {"kind": "veth", "peer": item.ns_end, "peer_netns": item.netns, "state": "up"}}
        namespaces[item.netns] = {
            "sysctl": {"all": {"ipv4": {"forwarding": int(SYSCTL[1])}}},
            "interfaces": {"lo": {"link": {"kind": "physical", "state": "up"}},
                           item.ns_end: {"addresses": [item.ns_address], "link": {"kind": "veth", "state": "up"}}},
            "routing": {"routes": [{"to": "0.0.0.0/0", "via": item.gateway}]},
        }
    config = {"parameters": {"ignore": {"netns": ["^(?!%s)" % re.escape(prefix)]}},
              "interfaces": root, "namespaces": namespaces}
    path = os.path.join(directory, "ifstate.json")
    with open(path, "w") as handle:
        json.dump(config, handle)
    return path
