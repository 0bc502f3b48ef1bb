"""The floor: a hand-written single-process pyroute2 script doing W(N) directly.

    python floor.py apply|read|teardown PREFIX N

It enters each namespace once (setns) and uses a plain netlink socket there, one iptables-restore
per namespace: the least work a program can do for W(N). ``read`` reads back the full state of
W(N) (links, addresses, routes, the sysctl, the rules): the floor for a no-change run.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns

from workload import RULE, SYSCTL, items

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
HOME = os.open("/proc/self/ns/net", os.O_RDONLY)


def enter(fd: int) -> None:
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def apply(prefix: str, count: int) -> None:
    root = IPRoute()
    restore_input = "*filter\n-A INPUT %s\nCOMMIT\n" % RULE
    for item in items(prefix, count):
        pyroute2_netns.setns(item.netns, flags=os.O_CREAT, fork=False)  # creates it and enters it
        fd = os.open("/run/netns/" + item.netns, os.O_RDONLY)
        inner = IPRoute()
        inner.link("set", index=1, state="up")
        with open("/proc/sys/" + SYSCTL[0].replace(".", "/"), "w") as handle:
            handle.write(SYSCTL[1])
        subprocess.run(["iptables-restore", "--noflush"], input=restore_input, text=True, check=True)
        enter(HOME)
        root.link("add", ifname=item.root_end, kind="veth", peer={"ifname": item.ns_end, "net_ns_fd": fd})
        index = root.link_lookup(ifname=item.root_end)[0]
        address, length = item.root_address.split("/")
        root.addr("add", index=index, address=address, prefixlen=int(length))
        root.link("set", index=index, state="up")
        inner_index = inner.link_lookup(ifname=item.ns_end)[0]
        address, length = item.ns_address.split("/")
        inner.addr("add", index=inner_index, address=address, prefixlen=int(length))
        inner.link("set", index=inner_index, state="up")
        inner.route("add", dst="0.0.0.0/0", gateway=item.gateway)
        inner.close()
        os.close(fd)
    root.close()


def read(prefix: str, count: int) -> int:
    """Everything W(N) consists of, read back; returns how many objects were seen."""
    seen = 0
    root = IPRoute()
    seen += len(list(root.get_links())) + len(list(root.get_addr()))
    for item in items(prefix, count):
        fd = os.open("/run/netns/" + item.netns, os.O_RDONLY)
        enter(fd)
        inner = IPRoute()
        with open("/proc/sys/" + SYSCTL[0].replace(".", "/")) as handle:
            seen += len(handle.read())
        seen += len(subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, check=True).stdout)
        enter(HOME)
        seen += len(list(inner.get_links())) + len(list(inner.get_addr())) + len(list(inner.get_routes(table=254)))
        inner.close()
        os.close(fd)
    root.close()
    return seen


def teardown(prefix: str, count: int) -> None:
    """Namespaces first (the kernel takes their veths along), then wait for the root ends to go."""
    root = IPRoute()
    names = {item.root_end for item in items(prefix, count)}
    for item in items(prefix, count):
        try:
            pyroute2_netns.remove(item.netns)
        except OSError:
            pass
    while any(link.get_attr("IFLA_IFNAME") in names for link in root.get_links()):
        time.sleep(0.01)
    root.close()


if __name__ == "__main__":
    command, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"apply": apply, "read": read, "teardown": teardown}[command](prefix, count)
