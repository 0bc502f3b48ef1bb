# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply stage: carry out a plan's changes in order, each through its kind."""

from __future__ import annotations

import itertools
from typing import Iterator, List, Optional

from .kernel.session import Kernel
from .kinds.registry import kind_of
from .model import Change
from .rollback import Journal


def apply_change(kernel: Kernel, change: Change) -> None:
    kind_of(change).apply(kernel, change)


def execute(kernel: Kernel, changes: List[Change], check_mode: bool, journal: Optional[Journal] = None) -> List[Change]:
    """Apply ``changes`` in order unless in check mode; returns what was (or would be) done.
    A ``journal`` learns, before each change, how to reverse it."""
    if check_mode:
        return list(changes)
    done: List[Change] = []
    try:
        for batch in _batches(changes):
            if (batch[0].kind, batch[0].action) != ("netns", "delete"):
                kernel.settle()
            undos = [journal.prepare(kernel, change) if journal is not None else None for change in batch]

            def applied(position: int) -> None:  # called within this iteration only
                if journal is not None:
                    journal.applied(batch[position], undos[position])
                done.append(batch[position])

            kind_of(batch[0]).apply_batch(kernel, batch, applied)
    finally:
        kernel.settle()
    return done


def _batches(changes: List[Change]) -> Iterator[List[Change]]:
    """``changes`` in order and grouped: each run of consecutive changes of one action of a kind that
    applies several at once is one group, every other change a group of its own."""
    for (kind, _action), group in itertools.groupby(changes, key=lambda change: (kind_of(change), change.action)):
        if kind.batched:
            yield list(group)
        else:
            yield from ([change] for change in group)
