# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Undo for a failed apply: before each change reaches the kernel, record how to reverse it; when
a later change fails, reverse what this run did, newest first.

Creations, updates and address/route removals are reversible. A deleted namespace or link is not
(its processes, addresses and peers are gone with it), nor is a veth end moved between namespaces:
those are reported as not undone. What the kernel derives on its own is not restored either: a
bridge that lost its last port keeps no carrier.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from ._netlink.constants import RTPROT_KERNEL
from .apply import apply_change
from .kernel import Kernel
from .kinds.iptables import TOOLS, cached_tables, current_table, table_restore
from .kinds.link import index_of
from .kinds.route import routes
from .model import Change
from .system import trusted_files

Undo = Callable[[Kernel], None]


def _nothing(kernel: Kernel) -> None:
    """The undo of a change that an earlier undo already reverses."""


def _replay(change: Change) -> Undo:
    return lambda kernel: apply_change(kernel, change)


def _file_content(path: str) -> Optional[str]:
    return trusted_files.read_regular_file(path)  # never a FIFO opened, nor a symlink followed


def undo_of(kernel: Kernel, change: Change) -> Optional[Undo]:
    """How to reverse ``change``, read from the kernel before it is applied; None if it cannot be."""
    p, kind, action = change.params, change.kind, change.action
    if kind == "netns" and action == "create":
        return _replay(Change("netns", "delete", change.key, params={"name": p["name"]}))
    if kind == "sysctl":
        old = (change.before or {}).get("value")
        if old is None:  # in a namespace this run creates: undoing the creation covers it
            return _nothing
        return _replay(Change("sysctl", "update", change.key, params=dict(p, value=old)))
    if kind == "dns":
        old_text = _file_content(p["path"])
        if old_text is None:
            return _replay(Change("dns", "delete", change.key, params={"path": p["path"]}))
        return _replay(Change("dns", "update", change.key, params={"path": p["path"], "content": old_text}))
    if kind == "link":
        return _undo_link(kernel, change)
    if kind == "address":
        return _undo_address(kernel, change)
    if kind == "route":
        return _undo_route(kernel, change)
    if kind == "iptables":
        return _undo_iptables(kernel, change)
    return None


def _undo_link(kernel: Kernel, change: Change) -> Optional[Undo]:
    p, action = change.params, change.action
    link_type = p.get("link_type")
    if action == "create" and link_type is None:  # a veth pair
        return _replay(Change("link", "delete", change.key,
                              params={"ns": p["end"].netns, "name": p["end"].name, "peer_ns": p["peer"].netns}))
    if action == "create":
        return _replay(Change("link", "delete", change.key, params={"link_type": link_type, "ns": p["ns"], "name": p["name"]}))
    if action == "update" and link_type == "bridge-port":
        old_master = (change.before or {}).get("master")

        def detach(kernel_: Kernel) -> None:
            kernel_.requests(p["ns"]).link("set", index=index_of(kernel_, p["ns"], p["name"]), master=old_master or 0)
            kernel_.invalidate(p["ns"], "links")
        return detach
    if action == "update":
        # The plan's "before" is the link as read when planning (None for a link the run creates,
        # whose creation's undo covers it): no read here, which would be one dump per change.
        before = change.before or {}
        if all(value is None for value in before.values()):
            return _nothing
        return _replay(Change("link", "update", change.key, params={
            "ns": p["ns"], "name": p["name"], "mtu": before.get("mtu"), "mac": before.get("mac"),
            "up": None if before.get("state") is None else before["state"] == "up"}))
    return None  # delete, move: not reversible


def _undo_address(kernel: Kernel, change: Change) -> Undo:
    p = change.params
    swapped = dict(p, old=p.get("new"), new=p.get("old"))
    inverse = Change("address", {"create": "delete", "delete": "create", "replace": "replace"}[change.action],
                     change.key, params=swapped)
    # Removing an address makes the kernel drop the routes through gateways on its prefix; those
    # are no change of this run's plan, so remember them here and put them back with the address.
    dropped_with_it = [] if change.action == "create" else \
        [r for r in routes(kernel, p["ns"]) if r.proto != RTPROT_KERNEL and r.via is not None]

    def undo(kernel_: Kernel) -> None:
        apply_change(kernel_, inverse)
        kernel_.invalidate(p["ns"])
        present = {r.identity for r in routes(kernel_, p["ns"])}
        for route in dropped_with_it:
            if route.identity not in present:
                apply_change(kernel_, Change("route", "update", "%s in %s" % (route.dst, p["ns"]),
                                             params={"ns": p["ns"], "route": route}))
    return undo


def _undo_route(kernel: Kernel, change: Change) -> Optional[Undo]:
    p, action = change.params, change.action
    if action == "create":
        return _replay(Change("route", "delete", change.key, params=p))
    if action == "delete":  # "replace": also right when the second pass below finds it back already
        return _replay(Change("route", "update", change.key, params=p))
    return _replay(Change("route", "update", change.key, params={"ns": p["ns"], "route": p["old"]}))


def _undo_iptables(kernel: Kernel, change: Change) -> Undo:
    spec = change.params["spec"]
    old = current_table(kernel, spec.netns, spec.ip_version, spec.table)

    def restore(kernel_: Kernel) -> None:
        options, text = table_restore(spec, current_table(kernel_, spec.netns, spec.ip_version, spec.table), old)
        kernel_.run(spec.netns, [TOOLS[spec.ip_version][1], "-c"] + options, stdin=text)
        cached_tables(kernel_, spec.netns, spec.ip_version)[spec.table] = old
    return restore


class Journal:
    """What an apply did, with the way back."""

    def __init__(self, undoable: bool = True) -> None:
        self.undoable = undoable  # False: only remember what was done (no reads for undos)
        self.entries: List[Tuple[Change, Optional[Undo]]] = []

    def prepare(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        """Called just before ``change`` is applied."""
        return undo_of(kernel, change) if self.undoable else None

    def applied(self, change: Change, undo: Optional[Undo]) -> None:
        self.entries.append((change, undo))

    def roll_back(self, kernel: Kernel) -> Tuple[List[Change], List[str]]:
        """Reverse every recorded change, newest first; returns (undone, what could not be undone)."""
        undone: List[Change] = []
        problems: List[str] = []
        kernel.settle()
        for change, undo in reversed(self.entries):
            if undo is None:
                problems.append("%s (cannot be undone)" % change.summary())
                continue
            try:
                undo(kernel)
                kernel.settle()
                undone.append(change)
            except Exception as exc:  # keep undoing the rest: a half rollback is worse
                problems.append("%s (undo failed: %s)" % (change.summary(), exc))
        # Undoing an address change makes the kernel drop routes through gateways on the old
        # prefix, including routes restored a moment earlier: put restored routes back once more.
        for change, undo in self.entries:
            if change.kind == "route" and change.action in ("update", "delete") and undo is not None \
                    and change in undone:
                try:
                    undo(kernel)
                except Exception as exc:
                    problems.append("%s (undo failed: %s)" % (change.summary(), exc))
        kernel.invalidate()
        return undone, problems

