# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply stage: carry out a plan's changes in order, each through the applier of its kind."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .errors import NetnsError
from .kernel import Kernel
from .model import Change

Applier = Callable[[Kernel, Change], None]
_APPLIERS: Dict[Tuple[str, str, Optional[str]], Applier] = {}


def applier(kind: str, *actions: str, link_type: Optional[str] = None) -> Callable[[Applier], Applier]:
    """Register the function that carries out ``actions`` on objects of ``kind``; with
    ``link_type`` only for changes whose ``params['link_type']`` is that (bridge, vlan, ...)."""

    def register(func: Applier) -> Applier:
        for action in actions:
            _APPLIERS[(kind, action, link_type)] = func
        return func

    return register


# Carries out a run of consecutive changes of one kind and action at once; calls ``done(i)`` as soon
# as ``changes[i]`` is in the kernel and, after a failure, lets what had started finish before raising.
BatchApplier = Callable[[Kernel, List[Change], Callable[[int], None]], None]
_BATCH_APPLIERS: Dict[Tuple[str, str], BatchApplier] = {}


def batch_applier(kind: str, *actions: str) -> Callable[[BatchApplier], BatchApplier]:
    """Register the function that carries out several ``actions`` on objects of ``kind`` together
    (their objects are independent of each other, e.g. iptables tables of different namespaces)."""

    def register(func: BatchApplier) -> BatchApplier:
        for action in actions:
            _BATCH_APPLIERS[(kind, action)] = func
        return func

    return register


def apply_change(kernel: Kernel, change: Change) -> None:
    func = _APPLIERS.get((change.kind, change.action, change.params.get("link_type"))) \
        or _APPLIERS.get((change.kind, change.action, None))
    if func is None:
        raise NetnsError("no applier for %s" % change.summary())
    func(kernel, change)


def execute(kernel: Kernel, changes: List[Change], check_mode: bool, journal: Any = None) -> List[Change]:
    """Apply ``changes`` in order unless in check mode; returns what was (or would be) done.
    A ``journal`` (rollback.Journal) learns, before each change, how to reverse it."""
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

            if len(batch) > 1:
                _BATCH_APPLIERS[(batch[0].kind, batch[0].action)](kernel, batch, applied)
            else:
                apply_change(kernel, batch[0])
                applied(0)
    finally:
        kernel.settle()
    return done


def _batches(changes: List[Change]) -> Iterator[List[Change]]:
    """``changes`` in order and grouped: each run of consecutive changes whose kind and action have a
    batch applier is one group, every other change a group of its own."""
    for key, group in itertools.groupby(changes, key=lambda change: (change.kind, change.action)):
        if key in _BATCH_APPLIERS:
            yield list(group)
        else:
            yield from ([change] for change in group)
