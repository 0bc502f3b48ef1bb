# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a plan is made of: changes (with before/after for diffs), what earlier changes will create,
and the contract every kind of object fulfils."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Dict, List, Optional, Set, Tuple, Type, TypeVar

from .errors import NetnsError
from .kernel.session import Kernel


@dataclasses.dataclass(frozen=True)
class Params:
    """What applying a change needs; each kind declares its own (frozen dataclasses), and the type of
    a change's params says which kind applies and undoes it."""


@dataclasses.dataclass(frozen=True)
class Change:
    """One step of a plan: ``action`` on the object ``kind``/``key``.

    ``before``/``after`` are plain data for diff output; ``params`` is what the kind's apply needs.
    """

    kind: str
    action: str  # create | delete | update | replace | move | rename
    key: str
    before: Optional[Dict[str, Any]] = None
    after: Optional[Dict[str, Any]] = None
    params: Params = dataclasses.field(default_factory=Params, compare=False, repr=False)

    def summary(self) -> str:
        return "%s %s %s" % (self.action, self.kind, self.key)

    def as_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "action": self.action, "object": self.key,
                "before": self.before, "after": self.after}


P = TypeVar("P", bound=Params)


def params_of(change: Change, params_type: Type[P]) -> P:
    """``change.params`` as the type its kind handles. The registry routes a change by that type, so a
    mismatch is a bug of the engine: it stops the run with the object named, before anything is done."""
    params = change.params
    if not isinstance(params, params_type):
        raise NetnsError("internal error: %s change with %s params where %s were expected"
                         % (change.kind, type(params).__name__, params_type.__name__), obj=change.summary())
    return params


@dataclasses.dataclass
class Pending:
    """Objects that earlier changes of the same plan will create. Planning for a whole topology
    happens before anything is applied, so a later planner must accept, say, an address on a veth
    that does not exist yet (it reads as empty) instead of refusing it as missing."""

    namespaces: Set[str] = dataclasses.field(default_factory=set)
    links: Set[Tuple[Optional[str], str]] = dataclasses.field(default_factory=set)  # (netns, ifname)
    networks: Set[Tuple[Optional[str], Any]] = dataclasses.field(default_factory=set)  # (netns, IP network)
    # Links an earlier stage of the same run deletes (purge): later planners treat them as gone.
    doomed_links: Set[Tuple[Optional[str], str]] = dataclasses.field(default_factory=set)
    # Addresses earlier changes add, as the kernel will hold them: (netns, addresses.Address).
    addresses: Set[Tuple[Optional[str], Any]] = dataclasses.field(default_factory=set)
    # The MTU and up/down that earlier changes give links (what the link planners were told).
    link_mtus: Dict[Tuple[Optional[str], str], int] = dataclasses.field(default_factory=dict)
    links_up: Dict[Tuple[Optional[str], str], bool] = dataclasses.field(default_factory=dict)
    # Host devices the plan moves or keeps in place: (netns, ifindex) -> the entry that took it.
    devices: Dict[Tuple[Optional[str], int], str] = dataclasses.field(default_factory=dict)
    # Check mode of a single-object module inside a play: an earlier task that only reported
    # "would create" leaves the namespace or link missing; assume it instead of failing, and say so.
    assume_missing: bool = False
    assumed: Set[str] = dataclasses.field(default_factory=set)
    # Check mode: nothing is applied, so a program only the apply needs (wireguard-go) may be missing
    # yet (the role installs it after its own check); the plan says so instead of failing.
    checking: bool = False
    # Whether a link (netns, ifname) is the one the topology created (by identity): asked only
    # before replacing what cannot change in place (a vxlan's id); a plan without a record owns none.
    owns_link: Callable[[Tuple[Optional[str], str]], bool] = lambda _key: False

    def has_namespace(self, ns: Optional[str]) -> bool:
        if ns is None:
            return False
        if ns not in self.namespaces and self.assume_missing:
            self.assumed.add("namespace %s" % ns)
            return True
        return ns in self.namespaces

    def note_link(self, ns: Optional[str], name: str, mtu: Optional[int], up: Optional[bool]) -> None:
        if mtu is not None:
            self.link_mtus[(ns, name)] = mtu
        if up is not None:
            self.links_up[(ns, name)] = up

    def has_link(self, ns: Optional[str], name: str) -> bool:
        if (ns, name) not in self.links and self.assume_missing:
            self.assumed.add("link %s in %s" % (name, "the root namespace" if ns is None else "namespace " + ns))
            return True
        return (ns, name) in self.links


def diff_of(changes: List[Change]) -> Dict[str, Any]:
    """Ansible's diff: before and after of every object the plan touches, keyed by object."""
    before: Dict[str, Any] = {}
    after: Dict[str, Any] = {}
    for change in changes:
        name = change.kind + " " + change.key
        for side, value in ((before, change.before), (after, change.after)):
            if value is not None:
                side[name] = dict(side.get(name) or {}, **value) if isinstance(value, dict) else value
    return {"before": before, "after": after}


Undo = Callable[[Kernel], None]
# Reports as soon as the change at that position of a batch is in the kernel.
Done = Callable[[int], None]


def undo_nothing(kernel: Kernel) -> None:
    """The undo of a change that an earlier change's undo already reverses."""


class Kind:
    """One kind of object: what a kind's file defines, bound together and registered once (in
    kinds/registry.py). ``spec`` is its validated desired state; ``read``, ``plan`` and ``report``
    are its stages (their arguments differ per kind: a spec, the run's ``Pending``); ``apply`` and
    ``undo`` take the changes whose params are one of ``params``."""

    name: ClassVar[str]  # the kind its changes report ("netns", "link", ...)
    params: ClassVar[Tuple[type, ...]]  # the Params classes of its changes
    spec: ClassVar[Optional[type]] = None
    read: ClassVar[Optional[Callable[..., Any]]] = None
    plan: ClassVar[Optional[Callable[..., List[Change]]]] = None
    report: ClassVar[Optional[Callable[..., Dict[str, Any]]]] = None
    batched: ClassVar[bool] = False  # apply_batch takes a run of its changes of one action at once

    def apply(self, kernel: Kernel, change: Change) -> None:
        raise NotImplementedError

    def apply_batch(self, kernel: Kernel, changes: List[Change], done: Done) -> None:
        """Several independent changes at once; calls ``done(i)`` as soon as ``changes[i]`` is in the
        kernel and, after a failure, lets what had started finish before raising."""
        for position, change in enumerate(changes):
            self.apply(kernel, change)
            done(position)

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        """How to reverse ``change``, read from the kernel before it is applied; None if it cannot be."""
        return None

    def replay(self, change: Change) -> Undo:
        """An undo that applies ``change`` (the inverse of the one being undone)."""
        return lambda kernel: self.apply(kernel, change)
