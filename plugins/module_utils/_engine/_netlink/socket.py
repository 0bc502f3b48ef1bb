# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink exchanges on a plain socket: opening one, sending a request, receiving its answer (an
acknowledgement, a reply, the messages of a dump, or the kernel's refusal as OSError).

Reading is most of what a no-change run and the verification after an apply do. Through pyroute2
each dump costs a request through IPRoute's event loop (0.9 keeps one per socket, with four
descriptors). Here a dump is one send and a few receives. The one other question reads ask, a
namespace's id for another (RTM_GETNSID), is asked here too, so that a run that changes nothing
never loads pyroute2.

Changes are compiled by pyroute2 (its IPBatch: the request API and filters of IPRoute, without
sending) or by ``encode``, and sent here, one acknowledged request at a time: through IPRoute's
event loop each request cost about 1 ms with pyroute2 0.9, most of a boot-time restore.
"""

from __future__ import annotations

import errno
import os
import socket  # the standard library's: imports are absolute, this module is never its own
from typing import Iterator, List, Optional, Tuple

from .constants import (
    HEADER,
    NETLINK_ROUTE,
    NFT_MSG_NEWGEN,
    NLM_F_DUMP_INTR,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_NEWNSID,
    S32,
    SO_NETNS_COOKIE,
    U64,
)
from .decode import Message, decode, decode_nft_generation, decode_nsid
from .encode import acknowledged_request, dump_request, nft_generation_request, nsid_request

# The kernel puts at most 32 KiB into one datagram of a dump.
RECEIVE_SIZE = 65536
ATTEMPTS = 5  # a dump the kernel marks as interrupted (the table changed meanwhile) is repeated


def open_socket(protocol: int = NETLINK_ROUTE) -> socket.socket:
    """A netlink socket (route, unless told otherwise) in the calling thread's current network namespace."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)


def dump(sock: socket.socket, kind: str, family: int = socket.AF_UNSPEC) -> List[Message]:
    """Every object of ``kind`` ('links', 'addresses', 'routes', 'rules'); a kernel error is raised as
    OSError with its errno."""
    for _attempt in range(ATTEMPTS):
        messages, interrupted = _dump_once(sock, kind, family)
        if not interrupted:
            return [decode(kind, data) for data in messages]
    raise OSError(errno.EINTR, "netlink dump of %s kept being interrupted" % kind)


def get_nsid(sock: socket.socket, target_fd: int) -> Optional[int]:
    """The id the socket's namespace uses for the namespace open as ``target_fd``; None when none
    is assigned. A kernel error is raised as OSError with its errno."""
    sequence = _next_sequence()
    sock.send(nsid_request(target_fd, sequence))
    return decode_nsid(_answer(sock, sequence, RTM_NEWNSID) or b"")


def nft_generation(sock: socket.socket) -> int:
    """The nftables generation id of the namespace of ``sock`` (a NETLINK_NETFILTER socket): every
    commit to its ruleset, by any tool, advances it. A kernel error is raised as OSError."""
    sequence = _next_sequence()
    sock.send(nft_generation_request(sequence))
    generation = decode_nft_generation(_answer(sock, sequence, NFT_MSG_NEWGEN) or b"")
    if generation is None:
        raise OSError(errno.EPROTO, "the kernel sent no nftables generation")
    return generation


def netns_cookie(sock: socket.socket) -> int:
    """The cookie of the namespace of ``sock``: unique among all namespaces since boot (inode
    numbers, unlike it, are reused). OSError (ENOPROTOOPT) before Linux 5.14."""
    return U64.unpack(sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, U64.size))[0]


def acknowledged(sock: socket.socket, message: bytes) -> None:
    """Send one request (a whole message, compiled elsewhere) and wait until the kernel has
    carried it out; a refusal is raised as OSError with its errno."""
    sequence = _next_sequence()
    sock.send(acknowledged_request(message, sequence))
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


def _dump_once(sock: socket.socket, kind: str, family: int) -> Tuple[List[bytes], bool]:
    """The raw messages of one dump, and whether the kernel marked it as interrupted."""
    sequence = _next_sequence()
    sock.send(dump_request(kind, family, sequence))
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
                    code = S32.unpack_from(data, offset + HEADER.size)[0] if length >= HEADER.size + S32.size else 0
                    if code < 0:
                        raise OSError(-code, os.strerror(-code))
                yield msg_type, flags, data[offset:offset + length]
            offset += (length + 3) & ~3


_SEQUENCE = [0]


def _next_sequence() -> int:
    _SEQUENCE[0] = _SEQUENCE[0] % 0x7FFFFFFF + 1
    return _SEQUENCE[0]
