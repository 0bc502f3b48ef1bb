# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink per namespace: dumps on a socket opened for each, one plain socket kept per namespace the
run changes for the requests, pyroute2 only to compile requests our encoder does not know and for
the few lookups that are no dump."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from .._netlink import socket as netlink_socket
from .._netlink.constants import NETLINK_ROUTE
from .._netlink.decode import Message, split_messages
from .._netlink.encode import encode_request
from ..errors import NetnsError, errno_of
from .library import pyroute2_class, pyroute2_errors

if TYPE_CHECKING:
    from .session import Kernel


def ns_label(ns: Optional[str]) -> str:
    return "root namespace" if ns is None else "netns %s" % ns


@contextlib.contextmanager
def refusal(what: str, obj: str) -> Iterator[None]:
    """Turn a kernel refusal into the engine's exception, naming the object."""
    try:
        yield
    except NetnsError:
        raise
    except (OSError, *pyroute2_errors()) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise NetnsError("%s failed: %s" % (what, reason), obj=obj, errno=errno_of(exc)) from None


class NetlinkTransport:
    def __init__(self, session: "Kernel") -> None:
        self._session = session
        self._sockets: Dict[Optional[str], Any] = {}  # plain netlink sockets for changes
        self._iproutes: Dict[Optional[str], Any] = {}
        self._compiler: Any = None  # pyroute2's IPBatch, loaded with the first change

    def socket(self, ns: Optional[str], protocol: int = NETLINK_ROUTE) -> Any:
        """A new plain netlink socket (route, unless told otherwise) bound inside ``ns``."""
        with self._session.entered(ns):
            return netlink_socket.open_socket(protocol)

    def dump(self, ns: Optional[str], kind: str, family: int = 0) -> List[Message]:
        """Every link, address or route (``kind``) of ``ns``: one dump on a socket opened inside
        ``ns`` for it and closed after (no descriptor or event loop kept per namespace)."""
        with refusal("dump " + kind, ns_label(ns)), self.socket(ns) as sock:
            return netlink_socket.dump(sock, kind, family)

    def requests(self, ns: Optional[str]) -> "Requests":
        """pyroute2's request API (``link``, ``addr``, ``route``, ``rule``) for changes inside ``ns``."""
        if ns not in self._sockets:
            with refusal("open a netlink socket", ns_label(ns)):
                self._sockets[ns] = self.socket(ns)
        return Requests(self, self._sockets[ns])

    def ipr(self, ns: Optional[str]) -> Any:
        """A pyroute2 IPRoute bound inside ``ns``, for the few lookups that are no dump."""
        if ns not in self._iproutes:
            IPRoute = pyroute2_class("IPRoute")
            with self._session.entered(ns), refusal("open a netlink socket", ns_label(ns)):
                self._iproutes[ns] = IPRoute()
        return self._iproutes[ns]

    def compile_request(self, kind: str, command: str, args: Dict[str, Any]) -> List[bytes]:
        """The netlink messages pyroute2 compiles for IPRoute's ``kind(command, **args)``."""
        if self._compiler is None:
            self._compiler = pyroute2_class("IPBatch")()
        self._compiler.reset()
        getattr(self._compiler, kind)(command, **args)
        return split_messages(bytes(self._compiler.batch))

    def forget(self, ns: Optional[str]) -> None:
        """Close what is held inside ``ns`` (deleted, or created anew)."""
        for sockets in (self._sockets, self._iproutes):
            sock = sockets.pop(ns, None)
            if sock is not None:
                with contextlib.suppress(Exception):
                    sock.close()

    def close(self) -> None:
        for sock in list(self._sockets.values()) + list(self._iproutes.values()) + [self._compiler]:
            if sock is not None:
                with contextlib.suppress(Exception):
                    sock.close()
        self._iproutes.clear()
        self._compiler = None
        self._sockets.clear()


class Requests:
    """Changes inside one namespace with pyroute2's request API (IPRoute's ``link``, ``addr``,
    ``route`` and their arguments), sent on a plain netlink socket opened in the namespace, one
    acknowledged message at a time. The frequent flat requests are encoded by _netlink.encode;
    the others are compiled by pyroute2's IPBatch (IPRoute's request filters, without sending)."""

    def __init__(self, transport: NetlinkTransport, sock: Any) -> None:
        self._transport = transport
        self._sock = sock

    def link(self, command: str, **args: Any) -> None:
        self._send("link", command, args)

    def addr(self, command: str, **args: Any) -> None:
        self._send("addr", command, args)

    def route(self, command: str, **args: Any) -> None:
        self._send("route", command, args)

    def rule(self, command: str, **args: Any) -> None:
        self._send("rule", command, args)

    def _send(self, kind: str, command: str, args: Dict[str, Any]) -> None:
        message = encode_request(kind, command, args)
        messages = [message] if message is not None else self._transport.compile_request(kind, command, args)
        for each in messages:
            netlink_socket.acknowledged(self._sock, each)


def attr(msg: Any, *path: str) -> Any:
    """A nested netlink attribute, e.g. ``attr(msg, 'IFLA_LINKINFO', 'IFLA_INFO_KIND')``."""
    node = msg
    for name in path:
        if node is None:
            return None
        node = node.get_attr(name)
    return node


def as_list(result: Any) -> List[Any]:
    """pyroute2 0.7 returns lists, 0.9 tuples or generators."""
    return list(result)
