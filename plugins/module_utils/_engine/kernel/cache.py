# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run has read of the kernel, per namespace, until a change makes it stale."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Set, Tuple, TypeVar

T = TypeVar("T")
ALL = object()  # invalidate(): every namespace (None means the root namespace)


class ReadCache:
    def __init__(self) -> None:
        self._entries: Dict[Optional[str], Dict[str, Any]] = {}  # namespace -> what -> value
        # Entries this run wrote to the kernel itself (e.g. a restored iptables table): they describe
        # the kernel as well as a fresh read would, and survive ``invalidate(keep_written=True)``.
        self._written: Set[Tuple[Optional[str], str]] = set()
        self.indexes: Dict[Tuple[Optional[str], str], int] = {}  # (namespace, ifname) -> ifindex, see link.index_of
        self.namespaces: Optional[Set[str]] = None  # the named namespaces, once listed

    def get(self, ns: Optional[str], what: str, reader: Callable[[Optional[str]], T]) -> T:
        """The cached ``what`` of ``ns``, read with ``reader(ns)`` the first time."""
        per_ns = self._entries.setdefault(ns, {})
        if what not in per_ns:
            per_ns[what] = reader(ns)
        return per_ns[what]

    def peek(self, ns: Optional[str], what: str) -> Optional[Any]:
        """A cached read if there is one, without reading."""
        return self._entries.get(ns, {}).get(what)

    def written(self, ns: Optional[str], what: str) -> None:
        """Mark the cached ``what`` of ``ns`` as written to the kernel by this run."""
        self._written.add((ns, what))

    def invalidate(self, ns: Any = ALL, what: Optional[str] = None, keep_written: bool = False) -> None:
        """Forget cached reads: of one namespace (``None`` is the root) or of all, of one kind or
        of every kind; with ``keep_written``, entries this run wrote itself stay."""
        if ns is ALL and what is None:
            self.namespaces = None
            self.indexes.clear()
        for name in list(self._entries) if ns is ALL else [ns]:
            per_ns = self._entries.get(name, {})
            for kind in list(per_ns) if what is None else [what]:
                if kind in per_ns and not (keep_written and (name, kind) in self._written):
                    del per_ns[kind]
                    self._written.discard((name, kind))

    def forget(self, ns: Optional[str]) -> None:
        """Drop every entry of ``ns`` (deleted or created), written ones too."""
        for what in self._entries.pop(ns, {}):
            self._written.discard((ns, what))

    def clear(self) -> None:
        self._entries.clear()
        self._written.clear()
        self.indexes.clear()
        self.namespaces = None
