# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One session with the kernel: namespaces are entered with setns, never created by a read.

pyroute2's own ``netns=`` support forks a helper per namespace (and creates missing namespaces);
entering with setns and opening an ordinary socket there is several times cheaper and never
creates anything. Reads are dumps on a socket opened for them (_netlink.socket); a namespace the run
changes keeps one plain netlink socket for the requests pyroute2 compiles, until the session ends.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import subprocess
import sys
import traceback
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

from ._netlink import socket as netlink_socket
from ._netlink.constants import NETLINK_NETFILTER, NETLINK_ROUTE
from ._netlink.decode import Message, split_messages
from ._netlink.encode import encode_request
from .errors import NetnsError, errno_of
from .system import limits, netns_mounts, thread_netns


def _pyroute2_missing() -> Optional[str]:
    """Why pyroute2 cannot be used, or None. Found without importing it: it is loaded only when a
    run changes something (its import alone is a third of a no-change run of 100 namespaces)."""
    try:
        if importlib.util.find_spec("pyroute2") is not None:
            return None
    except (ImportError, ValueError):
        pass
    return "ModuleNotFoundError: No module named 'pyroute2'"


PYROUTE2_IMPORT_ERROR = _pyroute2_missing()
T = TypeVar("T")
ROOT = None  # the namespace the engine runs in (the host's, normally)


def ns_label(ns: Optional[str]) -> str:
    return "root namespace" if ns is None else "netns %s" % ns


ALL = object()  # invalidate(): every namespace (None means the root namespace)


class Kernel:
    """Reads and changes netlink objects per namespace; caches reads until told they are stale."""

    def __init__(self) -> None:
        self._fds: Dict[Optional[str], int] = {}
        self._sockets: Dict[Optional[str], Any] = {}  # plain netlink sockets for changes
        self._iproutes: Dict[Optional[str], Any] = {}
        self._compiler: Any = None  # pyroute2's IPBatch, loaded with the first change
        self._cache: Dict[Optional[str], Dict[str, Any]] = {}  # namespace -> what -> value
        # Cache entries this run wrote to the kernel itself (e.g. a restored iptables table): they
        # describe the kernel as well as a fresh read would, and survive ``invalidate(keep_written=True)``.
        self._written: set = set()
        self.indexes: Dict[Tuple[Optional[str], str], int] = {}  # (namespace, ifname) -> ifindex, see links.index_of
        self._existing: Optional[set] = None
        # Namespaces this run created: nothing is in them yet but what the kernel puts in every new
        # one and what this run adds, so e.g. their iptables tables need not be read before writing.
        self.created: set = set()
        self._settlers: List[Callable[[], None]] = []
        self._identities: Dict[Optional[str], List[Any]] = {}
        # iptables_snapshot.Snapshot of a run with a state directory: tables known from earlier runs.
        self.table_snapshot: Any = None

    # -- lifetime -------------------------------------------------------------------------
    def __enter__(self) -> "Kernel":
        limits.raise_open_file_limit()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.release_descriptors()
        self._cache.clear()
        self._written.clear()
        self.indexes.clear()
        self._existing = None
        self.created.clear()
        self._identities.clear()

    def release_descriptors(self) -> None:
        """Close every socket and namespace descriptor (they are opened again when needed), e.g.
        so that a rollback after running out of descriptors has some to work with."""
        for sock in list(self._sockets.values()) + list(self._iproutes.values()) + [self._compiler]:
            if sock is not None:
                with contextlib.suppress(Exception):
                    sock.close()
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._iproutes.clear()
        self._compiler = None
        self._sockets.clear()
        self._fds.clear()

    # -- namespaces -----------------------------------------------------------------------
    def namespaces(self) -> set:
        if self._existing is None:
            self._existing = set(netns_mounts.list_namespaces())
        return self._existing

    def exists(self, ns: Optional[str]) -> bool:
        return ns is None or ns in self.namespaces()

    def forget_namespace(self, ns: str) -> None:
        """Drop everything held for ``ns`` (after it was deleted or created)."""
        for sockets in (self._sockets, self._iproutes):
            sock = sockets.pop(ns, None)
            if sock is not None:
                with contextlib.suppress(Exception):
                    sock.close()
        fd = self._fds.pop(ns, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._identities.pop(ns, None)
        for what in self._cache.pop(ns, {}):
            self._written.discard((ns, what))
        if self._existing is not None:  # one stat, not a new listing: N creations stay linear
            if netns_mounts.namespace_exists(ns):
                self._existing.add(ns)
            else:
                self._existing.discard(ns)

    def fd(self, ns: Optional[str]) -> int:
        if ns not in self._fds:
            self._fds[ns] = netns_mounts.open_namespace(ns)
        return self._fds[ns]

    @contextlib.contextmanager
    def entered(self, ns: Optional[str]) -> Iterator[None]:
        with thread_netns.entered(None if ns is None else self.fd(ns)):
            yield

    def ipr(self, ns: Optional[str]) -> Any:
        """A pyroute2 IPRoute bound inside ``ns``, for the few lookups that are no dump."""
        if ns not in self._iproutes:
            IPRoute = _pyroute2("IPRoute")
            with self.entered(ns), self.netlink("open a netlink socket", ns_label(ns)):
                self._iproutes[ns] = IPRoute()
        return self._iproutes[ns]

    def requests(self, ns: Optional[str]) -> "Requests":
        """pyroute2's request API (``link``, ``addr``, ``route``) for changes inside ``ns``."""
        if ns not in self._sockets:
            with self.netlink("open a netlink socket", ns_label(ns)):
                self._sockets[ns] = self._plain_socket(ns)
        return Requests(self, self._sockets[ns])

    def _plain_socket(self, ns: Optional[str], protocol: int = NETLINK_ROUTE) -> Any:
        """A plain netlink socket (route, unless told otherwise) bound inside ``ns``."""
        with self.entered(ns):
            return netlink_socket.open_socket(protocol)

    def compile_request(self, kind: str, command: str, args: Dict[str, Any]) -> List[bytes]:
        """The netlink messages pyroute2 compiles for IPRoute's ``kind(command, **args)``."""
        if self._compiler is None:
            self._compiler = _pyroute2("IPBatch")()
        self._compiler.reset()
        getattr(self._compiler, kind)(command, **args)
        return split_messages(bytes(self._compiler.batch))

    def dump(self, ns: Optional[str], kind: str, family: int = 0) -> List[Message]:
        """Every link, address or route (``kind``) of ``ns``: one dump on a socket opened inside
        ``ns`` for it and closed after (no descriptor or event loop kept per namespace)."""
        with self.netlink("dump " + kind, ns_label(ns)), self._plain_socket(ns) as sock:
            return netlink_socket.dump(sock, kind, family)

    # -- asynchronous kernel work ------------------------------------------------------------
    def after_batch(self, settler: Callable[[], None]) -> None:
        """Queue a wait (e.g. for links of deleted namespaces to vanish) to run after the batch,
        so that many namespace deletions are awaited together rather than one by one."""
        self._settlers.append(settler)

    def settle(self) -> None:
        settlers, self._settlers = self._settlers, []
        for settler in settlers:
            settler()

    # -- cached reads ---------------------------------------------------------------------
    def cached(self, ns: Optional[str], what: str, reader: Callable[["Kernel", Optional[str]], T]) -> T:
        per_ns = self._cache.setdefault(ns, {})
        if what not in per_ns:
            per_ns[what] = reader(self, ns)
        return per_ns[what]

    def peek(self, ns: Optional[str], what: str) -> Optional[Any]:
        """A cached read if there is one, without reading."""
        return self._cache.get(ns, {}).get(what)

    def written(self, ns: Optional[str], what: str) -> None:
        """Mark the cached ``what`` of ``ns`` as written to the kernel by this run."""
        self._written.add((ns, what))

    def invalidate(self, ns: Any = ALL, what: Optional[str] = None, keep_written: bool = False) -> None:
        """Forget cached reads: of one namespace (``None`` is the root) or of all, of one kind or
        of every kind; with ``keep_written``, entries this run wrote itself stay."""
        if ns is ALL and what is None:
            self._existing = None
            self.indexes.clear()
        for name in list(self._cache) if ns is ALL else [ns]:
            per_ns = self._cache.get(name, {})
            for kind in list(per_ns) if what is None else [what]:
                if kind in per_ns and not (keep_written and (name, kind) in self._written):
                    del per_ns[kind]
                    self._written.discard((name, kind))

    # -- helpers ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def netlink(self, what: str, obj: str) -> Iterator[None]:
        """Turn a kernel refusal into the engine's exception, naming the object."""
        try:
            yield
        except NetnsError:
            raise
        except (OSError, *_pyroute2_errors()) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise NetnsError("%s failed: %s" % (what, reason), obj=obj, errno=errno_of(exc)) from None

    def run(self, ns: Optional[str], argv: Sequence[str], stdin: Optional[str] = None) -> str:
        """Run a program (never a shell) inside ``ns`` and return its standard output."""
        return self.finish(ns, argv, self.start(ns, argv, stdin))

    def start(self, ns: Optional[str], argv: Sequence[str], stdin: Optional[str] = None) -> "subprocess.Popen[str]":
        """Start a program (never a shell) inside ``ns`` (the child inherits the namespace of the
        thread that forks it), so that several can run at once; ``finish`` collects it. ``stdin``
        is handed over whole in an in-memory file, so the child never waits for this process. Bytes
        that are no UTF-8 (e.g. in a rule's comment someone else made) pass through unchanged."""
        with self.entered(ns):
            try:
                with _memory_file(stdin) as source:
                    return subprocess.Popen(list(argv), stdin=source, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, encoding="utf-8", errors="surrogateescape")
            except OSError as exc:
                raise NetnsError("cannot run %s" % argv[0], obj=ns_label(ns), errno=exc.errno) from None

    @staticmethod
    def finish(ns: Optional[str], argv: Sequence[str], proc: "subprocess.Popen[str]") -> str:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise NetnsError(
                "%s exited with %d: %s" % (" ".join(argv[:2]), proc.returncode, stderr.strip()),
                obj=ns_label(ns),
            )
        return stdout

    def generation(self, ns: Optional[str]) -> Optional[Tuple[int, int]]:
        """(cookie, nftables generation) of ``ns``: while both are as they were, its nftables
        ruleset has not changed. None where the kernel tells either not."""
        try:
            with self._plain_socket(ns, NETLINK_NETFILTER) as sock:
                return netlink_socket.netns_cookie(sock), netlink_socket.nft_generation(sock)
        except OSError:
            return None

    def identity(self, ns: Optional[str]) -> List[Any]:
        """What tells ``ns`` (as this run opened it) from every other namespace of this boot: its
        cookie, never handed out again before the next boot, or, on kernels before 5.14, which have
        none, its inode number (handed out again once the namespace is freed)."""
        if ns not in self._identities:
            try:
                with self._plain_socket(ns) as sock:
                    self._identities[ns] = ["cookie", netlink_socket.netns_cookie(sock)]
            except OSError:
                self._identities[ns] = ["inode", os.fstat(self.fd(ns)).st_ino if ns is not None
                                        else os.stat("/proc/thread-self/ns/net").st_ino]
        return self._identities[ns]

    def nsid(self, ns_from: Optional[str], ns_target: Optional[str]) -> Optional[int]:
        """The id ``ns_from`` uses for ``ns_target`` (IFLA_LINK_NETNSID), or None if unassigned."""
        with self.netlink("get nsid", ns_label(ns_from)), self._plain_socket(ns_from) as sock:
            return netlink_socket.get_nsid(sock, self.fd(ns_target))


def _pyroute2_errors() -> Tuple[type, ...]:
    """pyroute2's NetlinkError once pyroute2 is loaded (before that, nothing can raise it)."""
    exceptions = sys.modules.get("pyroute2.netlink.exceptions")
    return (exceptions.NetlinkError,) if exceptions is not None else ()


class Pyroute2Missing(NetnsError):
    """pyroute2 cannot be loaded; ``details`` is the import's traceback."""

    def __init__(self, details: str) -> None:
        super().__init__("the Python library pyroute2 cannot be loaded: %s" % details.strip().splitlines()[-1])
        self.details = details


def require_pyroute2() -> None:
    """Load pyroute2 now: called before a run's first change, so that a host where it cannot be
    loaded fails with nothing changed."""
    try:
        importlib.import_module("pyroute2")
    except ImportError:
        raise Pyroute2Missing(traceback.format_exc()) from None


def _pyroute2(name: str) -> Any:
    require_pyroute2()
    return getattr(sys.modules["pyroute2"], name)


class Requests:
    """Changes inside one namespace with pyroute2's request API (IPRoute's ``link``, ``addr``,
    ``route`` and their arguments), sent on a plain netlink socket opened in the namespace, one
    acknowledged message at a time. The frequent flat requests are encoded by _netlink.encode;
    the others are compiled by pyroute2's IPBatch (IPRoute's request filters, without sending)."""

    def __init__(self, kernel: "Kernel", sock: Any) -> None:
        self._kernel = kernel
        self._sock = sock

    def link(self, command: str, **args: Any) -> None:
        self._send("link", command, args)

    def addr(self, command: str, **args: Any) -> None:
        self._send("addr", command, args)

    def route(self, command: str, **args: Any) -> None:
        self._send("route", command, args)

    def _send(self, kind: str, command: str, args: Dict[str, Any]) -> None:
        message = encode_request(kind, command, args)
        messages = [message] if message is not None else self._kernel.compile_request(kind, command, args)
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


@contextlib.contextmanager
def _memory_file(text: Optional[str]) -> Iterator[int]:
    """A descriptor to read ``text`` from (/dev/null for no text), closed on leaving."""
    if text is None:
        yield subprocess.DEVNULL
        return
    fd = os.memfd_create("linuxnet-netns-input", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as handle:
            handle.write(text.encode("utf-8", "surrogateescape"))
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)
