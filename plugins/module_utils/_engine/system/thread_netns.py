# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The calling thread's network namespace: entering another one for a while, or a throw-away one,
and always coming back."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from typing import Callable, FrozenSet, Iterator, Optional

from . import libc
from ..errors import NetnsError

OWN_NAMESPACE = "/proc/thread-self/ns/net"


@contextlib.contextmanager
def away_from_home(leave: Callable[[], None]) -> Iterator[None]:
    """Run the body after ``leave`` has moved this thread to another network namespace, and move
    it back to the one it was in when the body ends, however it ends."""
    try:
        home = os.open(OWN_NAMESPACE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError("cannot open our own namespace", obj="root namespace", errno=exc.errno) from None
    try:
        leave()
        try:
            yield
        finally:
            libc.setns(home)
    finally:
        os.close(home)


@contextlib.contextmanager
def entered(fd: Optional[int]) -> Iterator[None]:
    """Run the body with this thread inside the namespace behind ``fd`` (``None``: stay)."""
    if fd is None:
        yield
        return
    with away_from_home(lambda: libc.setns(fd)):
        yield


@contextlib.contextmanager
def scratch_namespace() -> Iterator[None]:
    """Run the body (this thread) in a new, anonymous network namespace that nothing else sees;
    the kernel frees it when the body ends. Nothing is bound under /run/netns."""
    with away_from_home(lambda: libc.unshare_network("scratch namespace")):
        yield


@functools.lru_cache(maxsize=None)
def links_of_a_new_namespace() -> FrozenSet[str]:
    """The links every new namespace starts with: lo, and a fallback device of each tunnel module
    loaded (sit0, gre0, ...). Looked at once per process, in a throw-away namespace."""
    with scratch_namespace():
        return frozenset(name for _index, name in socket.if_nameindex())
