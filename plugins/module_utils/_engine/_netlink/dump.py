# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rtnetlink dumps of links, addresses and routes on a plain socket, decoding only what the engine reads.

Reading is most of what a no-change run and the verification after an apply do. Through pyroute2
each dump costs a request through IPRoute's event loop (0.9 keeps one per socket, with four
descriptors) and the decoding of every attribute of every message — a link carries some fifty,
statistics included. Profiled at 1000 namespaces, those made the verification pass after an apply
a third of a boot-time restore. Here a dump is one send and a few receives, and only the attributes
below are decoded, to the values pyroute2 gives them (tests compare both on live dumps). The one
other question reads ask, a namespace's id for another (RTM_GETNSID), is asked here too, so that a
run that changes nothing never loads pyroute2.

Changes are compiled by pyroute2 (its IPBatch: the request API and filters of IPRoute, without
sending) and sent here, one acknowledged request at a time: through IPRoute's event loop each
request cost about 1 ms with pyroute2 0.9, most of a boot-time restore.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

from .constants import (
    HEADER,
    NETLINK_ROUTE,
    NLA,
    NLA_TYPE_MASK,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    S32,
    U32,
)

# The kernel puts at most 32 KiB into one datagram of a dump.
RECEIVE_SIZE = 65536
ATTEMPTS = 5  # a dump the kernel marks as interrupted (the table changed meanwhile) is repeated

Decoder = Callable[[bytes], Any]


def _string(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


def _mac(data: bytes) -> str:
    return ":".join("%02x" % byte for byte in data)


def _ip(data: bytes) -> Optional[str]:
    if len(data) == 4:
        return socket.inet_ntop(socket.AF_INET, data)
    if len(data) == 16:
        return socket.inet_ntop(socket.AF_INET6, data)
    return None


def _u32(data: bytes) -> int:
    return U32.unpack_from(data)[0]


def _be32(data: bytes) -> int:
    return int.from_bytes(data[:4], "big")


def _s32(data: bytes) -> int:
    return S32.unpack_from(data)[0]


def _link_info(data: bytes) -> "Message":
    return Message({}, _attributes(data, 0, {1: ("IFLA_INFO_KIND", _string)}))


class Kind(NamedTuple):
    """One kind of rtnetlink object: its request type, fixed header (and its values' names), and
    the attributes the engine reads, by number."""

    request_type: int
    header: struct.Struct
    fields: Tuple[str, ...]
    attributes: Dict[int, Tuple[str, Decoder]]


KINDS: Dict[str, Kind] = {
    "links": Kind(18, struct.Struct("=BxHiII"), ("family", "ifi_type", "index", "flags", "change"),
                  {1: ("IFLA_ADDRESS", _mac), 3: ("IFLA_IFNAME", _string), 4: ("IFLA_MTU", _u32),
                   5: ("IFLA_LINK", _u32), 10: ("IFLA_MASTER", _u32), 18: ("IFLA_LINKINFO", _link_info),
                   37: ("IFLA_LINK_NETNSID", _s32)}),
    "addresses": Kind(22, struct.Struct("=BBBBI"), ("family", "prefixlen", "flags", "scope", "index"),
                      {1: ("IFA_ADDRESS", _ip), 2: ("IFA_LOCAL", _ip), 8: ("IFA_FLAGS", _u32)}),
    "routes": Kind(26, struct.Struct("=BBBBBBBBI"),
                   ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type", "flags"),
                   {1: ("RTA_DST", _ip), 4: ("RTA_OIF", _u32), 5: ("RTA_GATEWAY", _ip), 6: ("RTA_PRIORITY", _u32),
                    7: ("RTA_PREFSRC", _ip), 15: ("RTA_TABLE", _u32)}),
}


class Message:
    """The part of a netlink message the engine reads, shaped like pyroute2's: ``msg['index']``,
    ``msg.get_attr('IFLA_IFNAME')``."""

    __slots__ = ("fields", "attrs")

    def __init__(self, fields: Dict[str, int], attrs: Dict[str, Any]) -> None:
        self.fields = fields
        self.attrs = attrs

    def __getitem__(self, name: str) -> int:
        return self.fields[name]

    def get_attr(self, name: str) -> Any:
        return self.attrs.get(name)


def _attributes(data: bytes, offset: int, wanted: Dict[int, Tuple[str, Decoder]]) -> Dict[str, Any]:
    found: Dict[str, Any] = {}
    end = len(data)
    while offset + NLA.size <= end:
        length, nla_type = NLA.unpack_from(data, offset)
        if length < NLA.size:
            break
        known = wanted.get(nla_type & NLA_TYPE_MASK)
        if known is not None:
            found[known[0]] = known[1](data[offset + NLA.size:offset + length])
        offset += (length + 3) & ~3
    return found


def decode(kind: str, data: bytes) -> Message:
    """One message (starting with its nlmsghdr) of ``kind``."""
    spec = KINDS[kind]
    values = spec.header.unpack_from(data, HEADER.size)
    return Message(dict(zip(spec.fields, values)), _attributes(data, HEADER.size + spec.header.size, spec.attributes))




def open_socket(protocol: int = NETLINK_ROUTE) -> socket.socket:
    """A netlink socket (route, unless told otherwise) in the calling thread's current network namespace."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)


def dump(sock: socket.socket, kind: str, family: int = socket.AF_UNSPEC) -> List[Message]:
    """Every object of ``kind`` ('links', 'addresses', 'routes'); a kernel error is raised as
    OSError with its errno."""
    for _attempt in range(ATTEMPTS):
        messages, interrupted = _dump_once(sock, kind, family)
        if not interrupted:
            return [decode(kind, data) for data in messages]
    raise OSError(errno.EINTR, "netlink dump of %s kept being interrupted" % kind)


RTM_NEWNSID, RTM_GETNSID = 88, 90
NETNSA_NSID, NETNSA_FD = 1, 3
NSID_REQUEST = struct.Struct("=IHHIIBxxxHHI")  # nlmsghdr, rtgenmsg (padded), one u32 attribute


def get_nsid(sock: socket.socket, target_fd: int) -> Optional[int]:
    """The id the socket's namespace uses for the namespace open as ``target_fd``; None when none
    is assigned. A kernel error is raised as OSError with its errno."""
    sequence = _next_sequence()
    sock.send(NSID_REQUEST.pack(NSID_REQUEST.size, RTM_GETNSID, NLM_F_REQUEST, sequence, 0,
                                socket.AF_UNSPEC, NLA.size + 4, NETNSA_FD, target_fd))
    reply = _answer(sock, sequence, RTM_NEWNSID)
    nsid = _attributes(reply or b"", HEADER.size + 4, {NETNSA_NSID: ("nsid", _s32)}).get("nsid")
    return None if nsid is None or nsid < 0 else nsid


NFT_GETGEN, NFT_NEWGEN = (10 << 8) | 16, (10 << 8) | 15  # nfnetlink subsystem nf_tables, NFT_MSG_*GEN
NFTA_GEN_ID = 1
NFGEN_REQUEST = struct.Struct("=IHHIIBBH")  # nlmsghdr, nfgenmsg: family, version, resource id
SO_NETNS_COOKIE = 71
U64 = struct.Struct("=Q")


def nft_generation(sock: socket.socket) -> int:
    """The nftables generation id of the namespace of ``sock`` (a NETLINK_NETFILTER socket): every
    commit to its ruleset, by any tool, advances it. A kernel error is raised as OSError."""
    sequence = _next_sequence()
    sock.send(NFGEN_REQUEST.pack(NFGEN_REQUEST.size, NFT_GETGEN, NLM_F_REQUEST, sequence, 0, socket.AF_UNSPEC, 0, 0))
    reply = _answer(sock, sequence, NFT_NEWGEN)
    generation = _attributes(reply or b"", NFGEN_REQUEST.size, {NFTA_GEN_ID: ("id", _be32)}).get("id")
    if generation is None:
        raise OSError(errno.EPROTO, "the kernel sent no nftables generation")
    return generation


def netns_cookie(sock: socket.socket) -> int:
    """The cookie of the namespace of ``sock``: unique among all namespaces since boot (inode
    numbers, unlike it, are reused). OSError (ENOPROTOOPT) before Linux 5.14."""
    return U64.unpack(sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, U64.size))[0]


def split(data: bytes) -> List[bytes]:
    """The messages of a buffer of netlink messages (e.g. requests pyroute2's IPBatch compiled)."""
    messages = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length = HEADER.unpack_from(data, offset)[0]
        if length < HEADER.size:
            raise OSError(errno.EPROTO, "malformed netlink message")
        messages.append(data[offset:offset + length])
        offset += (length + 3) & ~3
    return messages


def acknowledged(sock: socket.socket, message: bytes) -> None:
    """Send one request (a whole message, compiled elsewhere) and wait until the kernel has
    carried it out; a refusal is raised as OSError with its errno."""
    sequence = _next_sequence()
    length, msg_type, flags = HEADER.unpack_from(message)[:3]
    sock.send(HEADER.pack(length, msg_type, flags | NLM_F_ACK, sequence, 0) + message[HEADER.size:length])
    _answer(sock, sequence)


def _answer(sock: socket.socket, sequence: int, reply_type: Optional[int] = None) -> Optional[bytes]:
    """Receive until the kernel answers request ``sequence``: with a message of ``reply_type``
    (returned), an acknowledgement (None) or a refusal (raised as OSError with its errno)."""
    for msg_type, _flags, message in _incoming(sock, sequence):
        if msg_type == NLMSG_ERROR:
            return None
        if msg_type == reply_type:
            return message
    return None  # not reached: _incoming ends only by raising


def request(kind: str, family: int, sequence: int) -> bytes:
    spec = KINDS[kind]
    body = bytearray(spec.header.size)
    body[0] = family  # every rtnetlink header starts with the address family
    return HEADER.pack(HEADER.size + len(body), spec.request_type, NLM_F_REQUEST | NLM_F_DUMP, sequence, 0) + bytes(body)


def _dump_once(sock: socket.socket, kind: str, family: int) -> Tuple[List[bytes], bool]:
    """The raw messages of one dump, and whether the kernel marked it as interrupted."""
    sequence = _next_sequence()
    sock.send(request(kind, family, sequence))
    messages: List[bytes] = []
    interrupted = False
    for msg_type, flags, message in _incoming(sock, sequence):
        interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
        if msg_type in (NLMSG_DONE, NLMSG_ERROR):
            return messages, interrupted
        messages.append(message)
    return messages, interrupted  # not reached: _incoming ends only by raising


def _incoming(sock: socket.socket, sequence: int) -> Iterator[Tuple[int, int, bytes]]:
    """The messages answering request ``sequence`` as they arrive: (type, flags, whole message);
    an NLMSG_ERROR carrying an error code is raised as OSError with its errno instead."""
    buffer = bytearray(RECEIVE_SIZE)
    while True:
        size = sock.recv_into(buffer, RECEIVE_SIZE, socket.MSG_TRUNC)
        if size > RECEIVE_SIZE:
            raise OSError(errno.EMSGSIZE, "netlink datagram larger than %d bytes" % RECEIVE_SIZE)
        data = bytes(buffer[:size])
        offset = 0
        while offset + HEADER.size <= size:
            length, msg_type, flags, seq, _port = HEADER.unpack_from(data, offset)
            if length < HEADER.size:
                raise OSError(errno.EPROTO, "malformed netlink message")
            if seq == sequence:
                if msg_type == NLMSG_ERROR:
                    code = S32.unpack_from(data, offset + HEADER.size)[0] if length >= HEADER.size + 4 else 0
                    if code < 0:
                        raise OSError(-code, os.strerror(-code))
                yield msg_type, flags, data[offset:offset + length]
            offset += (length + 3) & ~3


_SEQUENCE = [0]


def _next_sequence() -> int:
    _SEQUENCE[0] = _SEQUENCE[0] % 0x7FFFFFFF + 1
    return _SEQUENCE[0]
