# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named network namespaces on the filesystem, done the way iproute2's ``ip netns`` does them.

A named namespace is an nsfs bind mount at /run/netns/NAME; its own files (resolv.conf) live in
/etc/netns/NAME. Nothing here ever opens a namespace with O_CREAT: a missing namespace is a state,
not something to create by accident.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import List, Optional

from . import libc
from ..errors import NetnsError
from ..validation import check_netns_name
from .thread_netns import OWN_NAMESPACE, away_from_home

NETNS_RUN_DIR = "/run/netns"
NETNS_ETC_DIR = "/etc/netns"


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, check_netns_name(name))


def _nsfs_device() -> int:
    return os.stat("/proc/self/ns/net").st_dev


def is_mounted_netns(path: str) -> bool:
    """True when ``path`` is a network-namespace file (an nsfs bind mount), not a plain file."""
    try:
        return os.stat(path).st_dev == _nsfs_device()
    except FileNotFoundError:
        return False


def list_namespaces() -> List[str]:
    """Exact names of the mounted namespaces under /run/netns, sorted."""
    try:
        entries = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    nsfs = _nsfs_device()
    names = []
    for entry in entries:
        try:
            if os.stat(os.path.join(NETNS_RUN_DIR, entry)).st_dev == nsfs:
                names.append(entry)
        except OSError:
            continue
    return sorted(names)


def namespace_exists(name: str) -> bool:
    return is_mounted_netns(netns_path(name))


def namespace_inode(name: str) -> int:
    """The namespace's identity: the inode lsns and /proc/PID/ns/net show."""
    return os.stat(netns_path(name)).st_ino


def open_namespace(name: Optional[str]) -> int:
    """An O_RDONLY descriptor of a named namespace (``None``: our own). Never creates one."""
    path = OWN_NAMESPACE if name is None else netns_path(name)
    if name is not None and not is_mounted_netns(path):
        raise NetnsError("network namespace does not exist", obj="netns %s" % name, errno=errno.ENOENT)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError("cannot open namespace", obj="netns %s" % name, errno=exc.errno) from None
    if name is not None and os.fstat(fd).st_dev != _nsfs_device():
        # deleted since the check above: `ip netns delete` unmounts first and leaves a plain file a moment
        os.close(fd)
        raise NetnsError("network namespace does not exist", obj="netns %s" % name, errno=errno.ENOENT)
    return fd


def _ensure_run_dir_shared() -> None:
    """Like iproute2: /run/netns is a shared mount so bind mounts propagate to other mount namespaces."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    try:
        libc.mount(None, NETNS_RUN_DIR, libc.MS_SHARED | libc.MS_REC, what="mount --make-shared %s" % NETNS_RUN_DIR)
        return
    except NetnsError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: not a mount point yet
            raise
    libc.mount(NETNS_RUN_DIR, NETNS_RUN_DIR, libc.MS_BIND | libc.MS_REC)
    libc.mount(None, NETNS_RUN_DIR, libc.MS_SHARED | libc.MS_REC)


def create_namespace(name: str) -> None:
    """Create /run/netns/NAME holding a new, empty network namespace (as ``ip netns add``)."""
    path = netns_path(name)
    obj = "netns %s" % name
    _ensure_run_dir_shared()
    if is_mounted_netns(path):
        raise NetnsError("network namespace already exists", obj=obj, errno=errno.EEXIST)
    # A plain file left by an interrupted create is reused rather than refused.
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0))
    except OSError as exc:
        raise NetnsError("cannot create %s" % path, obj=obj, errno=exc.errno) from None
    try:
        with away_from_home(lambda: libc.unshare_network(obj)):
            libc.mount(OWN_NAMESPACE, path, libc.MS_BIND)
    except NetnsError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def delete_namespace(name: str) -> None:
    """Remove the name (as ``ip netns delete``); the kernel frees the namespace once unreferenced."""
    path = netns_path(name)
    code = libc.detach_mount(path)
    if code not in (0, errno.EINVAL, errno.ENOENT):
        raise NetnsError("cannot unmount %s" % path, obj="netns %s" % name, errno=code)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise NetnsError("cannot remove %s" % path, obj="netns %s" % name, errno=exc.errno) from None
