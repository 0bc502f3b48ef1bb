# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named network namespaces on the filesystem, done the way iproute2's ``ip netns`` does them.

A named namespace is an nsfs bind mount at /run/netns/NAME. Nothing here ever opens a
namespace with O_CREAT: a missing namespace is a state, not something to create by accident.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import resource
import socket
import stat
from typing import Dict, FrozenSet, Iterator, List, Optional

from .errors import NetnsError
from .validation import check_netns_name

NETNS_RUN_DIR = "/run/netns"
NETNS_ETC_DIR = "/etc/netns"
LOCK_PATH = "/run/lock/linuxnet-netns.lock"

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


def _mount(source: Optional[str], target: str, flags: int) -> None:
    result = _libc.mount(
        source.encode() if source else None, target.encode(), b"none", flags, None
    )
    _check(result, "mount(%s)" % target, obj=target)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace behind ``fd``."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


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
    path = "/proc/thread-self/ns/net" if name is None else netns_path(name)
    if name is not None and not is_mounted_netns(path):
        raise NetnsError("network namespace does not exist", obj="netns %s" % name, errno=errno.ENOENT)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError("cannot open namespace", obj="netns %s" % name, errno=exc.errno) from None


def raise_open_file_limit() -> None:
    """Let the soft limit on open files reach the hard one.

    A run keeps a descriptor and a netlink socket per namespace it touches, and systemd starts
    services with a soft limit of 1024 (its hard limit is far higher): a boot-time restore of some
    500 namespaces would otherwise fail with EMFILE. Nothing here uses select(), which is why the
    soft limit is kept low by default.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else _kernel_max_open_files()
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _kernel_max_open_files() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 65536


@contextlib.contextmanager
def entered(fd: Optional[int]) -> Iterator[None]:
    """Run the body with this thread inside the namespace behind ``fd`` (``None``: stay)."""
    if fd is None:
        yield
        return
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError("cannot open our own namespace", obj="root namespace", errno=exc.errno) from None
    try:
        setns(fd)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


def _ensure_run_dir_shared() -> None:
    """Like iproute2: /run/netns is a shared mount so bind mounts propagate to other mount namespaces."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    if _libc.mount(b"", NETNS_RUN_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, "mount --make-shared %s" % NETNS_RUN_DIR, obj=NETNS_RUN_DIR)
    _mount(NETNS_RUN_DIR, NETNS_RUN_DIR, MS_BIND | MS_REC)
    _mount(None, NETNS_RUN_DIR, MS_SHARED | MS_REC)


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
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)", obj=obj)
        try:
            _mount("/proc/thread-self/ns/net", path, MS_BIND)
        finally:
            setns(home)
    except NetnsError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(home)


def delete_namespace(name: str) -> None:
    """Remove the name (as ``ip netns delete``); the kernel frees the namespace once unreferenced."""
    path = netns_path(name)
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):
            raise NetnsError("cannot unmount %s" % path, obj="netns %s" % name, errno=code)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise NetnsError("cannot remove %s" % path, obj="netns %s" % name, errno=exc.errno) from None


def pids_by_netns_inode() -> Dict[int, List[int]]:
    """Map namespace inode -> pids whose network namespace it is (like lsns), one /proc scan."""
    result: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            inode = os.stat("/proc/%s/ns/net" % entry).st_ino
        except OSError:
            continue
        result.setdefault(inode, []).append(int(entry))
    for pids in result.values():
        pids.sort()
    return result


@contextlib.contextmanager
def apply_lock(path: str = LOCK_PATH) -> Iterator[None]:
    """Serialise every change this collection makes on a host; released when the holder dies."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_file_atomically(path: str, content: str, mode: int = 0o644) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    # O_NOFOLLOW: a symlink planted at the temporary name must not redirect the write
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        try:
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(content.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.rename(tmp, path)  # readers see the old file or the new one, never a part
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def is_regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def scratch_namespace() -> Iterator[None]:
    """Run the body (this thread) in a new, anonymous network namespace that nothing else sees;
    the kernel frees it when the body ends. Nothing is bound under /run/netns."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)", obj="scratch namespace")
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


@functools.lru_cache(maxsize=None)
def links_of_a_new_namespace() -> FrozenSet[str]:
    """The links every new namespace starts with: lo, and a fallback device of each tunnel module
    loaded (sit0, gre0, ...). Looked at once per process, in a throw-away namespace."""
    with scratch_namespace():
        return frozenset(name for _index, name in socket.if_nameindex())
