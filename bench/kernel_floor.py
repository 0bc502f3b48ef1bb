"""The kernel floor for W_nft(N): the least user-space work a program can do for it, in one process.

    python kernel_floor.py apply|read PREFIX N

Each namespace is made by unshare(CLONE_NEWNET) in this very process and bound on /run/netns/NAME
(what `ip netns add` does, without a process per namespace); lo, the veth pair (created inside the
namespace with its peer put into the root namespace, the inner end up in the create request), the
address and the default route go to the kernel as one raw netlink batch, the root end's address and
its "up" as a second one on a socket opened in the root namespace; the sysctl is one write to /proc/sys; the
rule is one libnftables call in process (Debian's python3-nftables). No pyroute2, no program
started. ``read`` reads all of W_nft(N) back: a link, address and route dump per namespace (the
replies are received, not decoded), the sysctl and the table listed as JSON by libnftables.
Teardown is floor.py's (namespaces first).
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import sys
from typing import List

from nftables import Nftables

from workload import SYSCTL, NFT_TABLE, items, nft_command

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
NETNS_DIR = "/run/netns"
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]

# rtnetlink (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/veth.h)
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 16, 18, 20, 22, 24, 26
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_IFNAME, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
IFF_UP = 0x1
INNER_INDEX = 2  # a new namespace's first link after lo: asked for explicitly in the create request


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def ifinfo(index: int = 0, up: bool = False) -> bytes:
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def link_up(index: int) -> bytes:
    return ifinfo(index, up=True)


def veth(name: str, index: int, peer: str, peer_netns_fd: int) -> bytes:
    """Up, with its peer created in the namespace of ``peer_netns_fd``; the peer cannot be brought up
    in the same request (the kernel opens it before the pair is joined: ENOTCONN)."""
    peer_body = ifinfo() + attr(IFLA_IFNAME, peer.encode() + b"\0") + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
    info = attr(IFLA_INFO_KIND, b"veth\0") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_body))
    return ifinfo(index, up=True) + attr(IFLA_IFNAME, name.encode() + b"\0") + attr(IFLA_LINKINFO, info)


def address(index: int, cidr: str) -> bytes:
    text, length = cidr.split("/")
    packed = socket.inet_aton(text)
    return struct.pack("=BBBBI", socket.AF_INET, int(length), 0, 0, index) + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)


def default_route(gateway: str) -> bytes:
    # family, dst_len, src_len, tos, table main, protocol boot, scope universe, type unicast, flags
    return struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0) + attr(RTA_GATEWAY, socket.inet_aton(gateway))


class Netlink:
    """One NETLINK_ROUTE socket, bound in the namespace the thread is in when it is made."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def message(self, kind: int, flags: int, body: bytes) -> bytes:
        self.seq += 1
        return struct.pack("=IHHII", 16 + len(body), kind, flags | NLM_F_REQUEST, self.seq, 0) + body

    def batch(self, messages: List[bytes]) -> None:
        """Sends the messages in one write and waits for an acknowledgement of each; a refusal raises."""
        self.sock.send(b"".join(messages))
        pending = len(messages)
        while pending:
            data = self.sock.recv(65536)
            offset = 0
            while offset < len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == NLMSG_ERROR:
                    error = struct.unpack_from("=i", data, offset + 16)[0]
                    if error:
                        raise OSError(-error, os.strerror(-error))
                    pending -= 1
                offset += (length + 3) & ~3

    def dump(self, kind: int, body: bytes) -> int:
        """Receives a whole dump (undecoded); returns its size in bytes."""
        self.sock.send(self.message(kind, NLM_F_DUMP, body))
        size = 0
        while True:
            data = self.sock.recv(65536)
            size += len(data)
            offset = 0
            while offset < len(data):
                length, reply = struct.unpack_from("=IH", data, offset)
                if reply == NLMSG_DONE:
                    return size
                if reply == NLMSG_ERROR:
                    raise OSError(-struct.unpack_from("=i", data, offset + 16)[0], "dump")
                offset += (length + 3) & ~3

    def index_of(self, name: str) -> int:
        self.sock.send(self.message(RTM_GETLINK, 0, ifinfo() + attr(IFLA_IFNAME, name.encode() + b"\0")))
        data = self.sock.recv(65536)
        if struct.unpack_from("=H", data, 4)[0] == NLMSG_ERROR:
            raise OSError(-struct.unpack_from("=i", data, 16)[0], name)
        return struct.unpack_from("=i", data, 16 + 4)[0]

    def close(self) -> None:
        self.sock.close()


def new_bound_netns(name: str) -> None:
    """Moves this thread into a new network namespace and binds it on /run/netns/NAME."""
    path = os.path.join(NETNS_DIR, name)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    if libc.unshare(CLONE_NEWNET) != 0 or libc.mount(b"/proc/self/ns/net", path.encode(), b"none", MS_BIND, None) != 0:
        raise OSError(ctypes.get_errno(), "unshare/bind " + name)


def enter(fd: int) -> None:
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def nft(command: str) -> str:
    """One libnftables call; a context binds its socket where it is made, so one per namespace."""
    context = Nftables()
    rc, output, error = context.cmd(command)
    if rc != 0:
        raise RuntimeError("nft refused %r: %s" % (command, error))
    return output


def apply(prefix: str, count: int) -> None:
    os.makedirs(NETNS_DIR, exist_ok=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    root = Netlink()
    table = nft_command()
    for item in items(prefix, count):
        new_bound_netns(item.netns)
        inner = Netlink()
        inner.batch([inner.message(RTM_NEWLINK, NLM_F_ACK, link_up(1)),
                     inner.message(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                                   veth(item.ns_end, INNER_INDEX, item.root_end, home)),
                     inner.message(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, address(INNER_INDEX, item.ns_address)),
                     inner.message(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, default_route(item.gateway))])
        inner.close()
        with open("/proc/sys/" + SYSCTL[0].replace(".", "/"), "w") as handle:
            handle.write(SYSCTL[1])
        nft(table)
        index = root.index_of(item.root_end)
        root.batch([root.message(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, address(index, item.root_address)),
                    root.message(RTM_NEWLINK, NLM_F_ACK, link_up(index))])
    enter(home)
    root.close()
    os.close(home)


def read(prefix: str, count: int) -> int:
    """Everything W_nft(N) consists of, read back; returns how many bytes were seen."""
    seen = 0
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    root = Netlink()
    seen += root.dump(RTM_GETLINK, ifinfo()) + root.dump(RTM_GETADDR, struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0))
    listing = "list table %(family)s %(table)s" % NFT_TABLE
    for item in items(prefix, count):
        fd = os.open(os.path.join(NETNS_DIR, item.netns), os.O_RDONLY)
        enter(fd)
        os.close(fd)
        inner = Netlink()
        seen += inner.dump(RTM_GETLINK, ifinfo()) + inner.dump(RTM_GETADDR, struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0))
        seen += inner.dump(RTM_GETROUTE, struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 0, 0, 0, 0))
        inner.close()
        with open("/proc/sys/" + SYSCTL[0].replace(".", "/")) as handle:
            seen += len(handle.read())
        context = Nftables()
        context.set_json_output(True)
        rc, output, _error = context.cmd(listing)
        if rc != 0:
            raise RuntimeError("no table in " + item.netns)
        seen += len(output)
    enter(home)
    root.close()
    os.close(home)
    return seen


if __name__ == "__main__":
    command, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"apply": apply, "read": read}[command](prefix, count)
