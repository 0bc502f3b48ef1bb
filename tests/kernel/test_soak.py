"""Soak: 200 apply / purge / teardown cycles of a changing random topology (seeded, reproducible)
in one long-lived engine process, like a restore program that never exits: no leaked namespaces,
links, files, file descriptors, and no memory growth."""

from __future__ import annotations

import os
import random
from typing import Any, Dict

from helpers import leftovers, netns_list

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel.session import Kernel
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.topology import converge_topology

CYCLES = int(os.environ.get("LINUXNET_SOAK_CYCLES", "200"))
SEED = 20261125
RULES = ["-p tcp --dport 22 -j ACCEPT", "-p udp --dport 53 -j ACCEPT", "-p icmp -j ACCEPT", "-s 10.0.0.0/8 -j DROP"]


def random_topology(rng: random.Random, prefix: str, name: str) -> Dict[str, Any]:
    """1..5 of 6 possible namespaces; each joined to the root or to an earlier one by a veth with a
    /30 on each end, a route, maybe forwarding, maybe DNS, 0..2 rules."""
    chosen = sorted(rng.sample(range(6), rng.randint(1, 5)))
    namespaces, links, host = [], [], []
    for position, i in enumerate(chosen):
        ns = "%ss%d" % (prefix, i)
        upstream = None if position == 0 or rng.random() < 0.5 else "%ss%d" % (prefix, rng.choice(chosen[:position]))
        subnet = "10.238.%d" % (i * 4 + rng.randint(0, 3))
        up_end = "%su%d" % (prefix, i) if upstream is None else "u%d" % i
        links.append({"type": "veth", "name": up_end, "netns": upstream, "peer": "d%d" % i, "peer_netns": ns,
                      "mtu": rng.choice([1500, 1400])})
        entry: Dict[str, Any] = {"name": ns, "addresses": [{"dev": "d%d" % i, "address": subnet + ".2/30"}],
                                 "routes": [{"dst": "10.239.%d.0/24" % i, "via": subnet + ".1"}]}
        if rng.random() < 0.5:
            entry["sysctls"] = {"net.ipv4.ip_forward": rng.randint(0, 1)}
        if rng.random() < 0.3:
            entry["nameservers"] = ["192.0.2.%d" % rng.randint(1, 254)]
        rules = rng.sample(RULES, rng.randint(0, 2))
        if rules:
            entry["iptables"] = [{"table": "filter", "chains": [{"name": "INPUT", "rules": rules}]}]
        namespaces.append(entry)
        address = {"dev": up_end, "address": subnet + ".1/30"}
        if upstream is None:
            host.append(address)
        else:
            next(n for n in namespaces if n["name"] == upstream)["addresses"].append(address)
    return {"name": name, "namespaces": namespaces, "links": links, "host": {"addresses": host}}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


def converge(spec: Dict[str, Any], state_dir: str, **kwargs: Any) -> None:
    with Kernel() as kernel:
        converge_topology(kernel, spec, state_dir=state_dir, **kwargs)
    with Kernel() as kernel:  # and a fresh look finds nothing left to do
        assert converge_topology(kernel, spec, state_dir=state_dir, check_mode=True,
                                 state=kwargs.get("state", "present")) == []


def test_soak_apply_purge_teardown(prefix: str, tmp_path: Any) -> None:
    rng = random.Random(SEED)
    state_dir = str(tmp_path / "state")
    name = prefix + "soak"
    baseline_fds = baseline_rss = 0
    for cycle in range(CYCLES):
        first, second = random_topology(rng, prefix, name), random_topology(rng, prefix, name)
        converge(first, state_dir)
        converge(second, state_dir, purge=True)  # what `first` had and `second` lacks goes
        assert sorted(n for n in netns_list() if n.startswith(prefix)) == sorted(ns["name"] for ns in second["namespaces"])
        converge(second, state_dir, state="absent")
        assert leftovers(prefix) == [], "cycle %d (seed %d)" % (cycle, SEED)
        if cycle == 19:  # after warm-up (imports, caches of iptables canonical forms)
            baseline_fds, baseline_rss = open_fds(), rss_kib()
    if CYCLES > 20:
        assert open_fds() == baseline_fds
        assert rss_kib() - baseline_rss < 8 * 1024, (baseline_rss, rss_kib())
