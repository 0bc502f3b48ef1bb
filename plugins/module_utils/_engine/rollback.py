# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Undo for a failed apply: before each change reaches the kernel, record how to reverse it (its kind
knows how); when a later change fails, reverse what this run did, newest first.

Creations, updates and address/route removals are reversible. A deleted namespace or link is not
(its processes, addresses and peers are gone with it), nor is a veth end moved between namespaces:
those are reported as not undone. What the kernel derives on its own is not restored either: a
bridge that lost its last port keeps no carrier.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from .kernel.session import Kernel
from .kinds.registry import kind_of
from .model import Change, Undo


class Journal:
    """What an apply did, with the way back."""

    def __init__(self, undoable: bool = True) -> None:
        self.undoable = undoable  # False: only remember what was done (no reads for undos)
        self.entries: List[Tuple[Change, Optional[Undo]]] = []

    def prepare(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        """Called just before ``change`` is applied."""
        return kind_of(change).undo(kernel, change) if self.undoable else None

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
        kernel.cache.invalidate()
        return undone, problems
