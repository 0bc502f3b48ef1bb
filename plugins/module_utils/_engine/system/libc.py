# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The system calls for namespaces that Python's os module lacks before 3.12 (setns, unshare) or
at all (mount, umount2), through ctypes; a failure is a NetnsError with the kernel's errno."""

from __future__ import annotations

import ctypes
from typing import Optional

from ..errors import NetnsError

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

# The process's own symbols, libc's among them: find_library("c") would start ldconfig on every run.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]


def _check(result: int, what: str, obj: Optional[str] = None) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise NetnsError("%s failed" % what, obj=obj, errno=code)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace behind ``fd``."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def unshare_network(obj: str) -> None:
    """Move the calling thread into a new, empty network namespace; errors name ``obj``."""
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)", obj=obj)


def mount(source: Optional[str], target: str, flags: int, what: Optional[str] = None) -> None:
    """mount(2) without a file system type or data: a bind mount, or a change of propagation."""
    result = _libc.mount(source.encode() if source else None, target.encode(), b"none", flags, None)
    _check(result, what or "mount(%s)" % target, obj=target)


def detach_mount(target: str) -> int:
    """Unmount ``target`` lazily (umount2 with MNT_DETACH): 0, or the errno of the failure."""
    return 0 if _libc.umount2(target.encode(), MNT_DETACH) == 0 else ctypes.get_errno()
