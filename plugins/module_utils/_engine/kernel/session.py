# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One session with the kernel: namespaces are entered with setns, never created by a read.

pyroute2's own ``netns=`` support forks a helper per namespace (and creates missing namespaces);
entering with setns and opening an ordinary socket there is several times cheaper and never
creates anything. The session holds the namespaces' descriptors and identities and what a run
must wait for; its ``cache``, ``netlink`` and ``programs`` are the reads, requests and programs.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from .._netlink import socket as netlink_socket
from .._netlink.constants import NETLINK_NETFILTER
from ..system import limits, netns_mounts, thread_netns
from .cache import ReadCache
from .programs import Programs
from .transport import NetlinkTransport, ns_label, refusal

ROOT = None  # the namespace the engine runs in (the host's, normally)


class Kernel:
    """Reads and changes netlink objects per namespace; caches reads until told they are stale."""

    def __init__(self) -> None:
        self.cache = ReadCache()
        self.netlink = NetlinkTransport(self)
        self.programs = Programs(self)
        self._fds: Dict[Optional[str], int] = {}
        # Namespaces this run created: nothing is in them yet but what the kernel puts in every new
        # one and what this run adds, so e.g. their iptables tables need not be read before writing.
        self.created: Set[str] = set()
        self._settlers: List[Callable[[], None]] = []
        self._identities: Dict[Optional[str], List[Any]] = {}

    # -- lifetime -------------------------------------------------------------------------
    def __enter__(self) -> "Kernel":
        limits.raise_open_file_limit()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.release_descriptors()
        self.cache.clear()
        self.created.clear()
        self._identities.clear()

    def release_descriptors(self) -> None:
        """Close every socket and namespace descriptor (they are opened again when needed), e.g.
        so that a rollback after running out of descriptors has some to work with."""
        self.netlink.close()
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    # -- namespaces -----------------------------------------------------------------------
    def namespaces(self) -> Set[str]:
        if self.cache.namespaces is None:
            self.cache.namespaces = set(netns_mounts.list_namespaces())
        return self.cache.namespaces

    def exists(self, ns: Optional[str]) -> bool:
        return ns is None or ns in self.namespaces()

    def forget_namespace(self, ns: str) -> None:
        """Drop everything held for ``ns`` (after it was deleted or created)."""
        self.netlink.forget(ns)
        fd = self._fds.pop(ns, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._identities.pop(ns, None)
        self.cache.forget(ns)
        if self.cache.namespaces is not None:  # one stat, not a new listing: N creations stay linear
            if netns_mounts.namespace_exists(ns):
                self.cache.namespaces.add(ns)
            else:
                self.cache.namespaces.discard(ns)

    def fd(self, ns: Optional[str]) -> int:
        if ns not in self._fds:
            self._fds[ns] = netns_mounts.open_namespace(ns)
        return self._fds[ns]

    @contextlib.contextmanager
    def entered(self, ns: Optional[str]) -> Iterator[None]:
        with thread_netns.entered(None if ns is None else self.fd(ns)):
            yield

    def generation(self, ns: Optional[str]) -> Optional[Tuple[int, int]]:
        """(cookie, nftables generation) of ``ns``: while both are as they were, its nftables
        ruleset has not changed. None where the kernel tells either not."""
        try:
            with self.netlink.socket(ns, NETLINK_NETFILTER) as sock:
                return netlink_socket.netns_cookie(sock), netlink_socket.nft_generation(sock)
        except OSError:
            return None

    def identity(self, ns: Optional[str]) -> List[Any]:
        """What tells ``ns`` (as this run opened it) from every other namespace of this boot: its
        cookie, never handed out again before the next boot, or, on kernels before 5.14, which have
        none, its inode number (handed out again once the namespace is freed)."""
        if ns not in self._identities:
            try:
                with self.netlink.socket(ns) as sock:
                    self._identities[ns] = ["cookie", netlink_socket.netns_cookie(sock)]
            except OSError:
                self._identities[ns] = ["inode", os.fstat(self.fd(ns)).st_ino if ns is not None
                                        else os.stat("/proc/thread-self/ns/net").st_ino]
        return self._identities[ns]

    def nsid(self, ns_from: Optional[str], ns_target: Optional[str]) -> Optional[int]:
        """The id ``ns_from`` uses for ``ns_target`` (IFLA_LINK_NETNSID), or None if unassigned."""
        with refusal("get nsid", ns_label(ns_from)), self.netlink.socket(ns_from) as sock:
            return netlink_socket.get_nsid(sock, self.fd(ns_target))

    # -- asynchronous kernel work ------------------------------------------------------------
    def after_batch(self, settler: Callable[[], None]) -> None:
        """Queue a wait (e.g. for links of deleted namespaces to vanish) to run after the batch,
        so that many namespace deletions are awaited together rather than one by one."""
        self._settlers.append(settler)

    def settle(self) -> None:
        settlers, self._settlers = self._settlers, []
        for settler in settlers:
            settler()
