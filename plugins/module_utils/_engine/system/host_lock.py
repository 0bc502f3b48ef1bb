# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host lock: every run that reads or writes a topology's state holds it, so that two runs
(an Ansible task and the boot unit's reload, two playbooks) never interleave.

It lives in /run/linuxnet-netns, a directory only root can create entries in (/run is root's 0755;
the directory is 0700): a local user can neither hold the lock first nor plant a link or a FIFO
in its place. A run that changes things holds it exclusively; a check holds it shared, and takes
none where no run has ever made the directory (creating it would be a write). The kernel releases
an flock when its holder dies. The lock is re-entrant within one process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from typing import Iterator, List, Optional

from ..errors import NetnsError

LOCK_DIR = "/run/linuxnet-netns"
LOCK_NAME = "lock"
# A whole topology of 1000 namespaces applies in seconds; a run still waiting after this long is
# stuck behind something that is not one of ours, and says what holds the lock.
LOCK_TIMEOUT = 600.0

_depth: List[int] = [0]


@contextlib.contextmanager
def host_lock(shared: bool = False, directory: str = LOCK_DIR, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the host lock for the body: exclusive for a run that changes things, ``shared`` for a
    read-only one (check mode), which takes none where the lock directory does not exist yet."""
    if _depth[0]:
        _depth[0] += 1
        try:
            yield
        finally:
            _depth[0] -= 1
        return
    fd = _open_lock(directory, create=not shared)
    if fd is None:
        yield
        return
    try:
        _acquire(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, os.path.join(directory, LOCK_NAME), timeout)
        _depth[0] = 1
        try:
            yield
        finally:
            _depth[0] = 0
    finally:
        os.close(fd)


def _open_lock(directory: str, create: bool) -> Optional[int]:
    dir_fd = _lock_directory(directory, create)
    if dir_fd is None:
        return None
    path = os.path.join(directory, LOCK_NAME)
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(LOCK_NAME, flags, 0o600, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NetnsError("cannot open the host lock", obj=path, errno=exc.errno) from None
    finally:
        os.close(dir_fd)
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid():
        os.close(fd)
        raise NetnsError("the host lock is not a regular file of uid %d; refusing to use it" % os.geteuid(), obj=path)
    return fd


def _lock_directory(directory: str, create: bool) -> Optional[int]:
    """A descriptor of the lock directory, made 0700 if missing; None if missing and not ``create``."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if create:
            raise NetnsError("the host lock directory vanished", obj=directory, errno=errno.ENOENT) from None
        return None
    except OSError as exc:
        raise NetnsError("the host lock directory is not a directory (a symlink?); refusing to use it",
                         obj=directory, errno=exc.errno) from None
    status = os.fstat(fd)
    if status.st_uid != os.geteuid() or status.st_mode & 0o077:  # mkdir's umask only ever narrows 0700
        os.close(fd)
        raise NetnsError("the host lock directory is owned by uid %d with mode %04o; it must be uid %d's, 0700"
                         % (status.st_uid, stat.S_IMODE(status.st_mode), os.geteuid()), obj=directory)
    return fd


def _acquire(fd: int, operation: int, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            raise NetnsError("waited %gs for the host lock, held by %s" % (timeout, holders(fd) or "an unknown process"),
                             obj=path, errno=errno.EWOULDBLOCK)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def holders(fd: int) -> str:
    """Who holds the lock on ``fd``'s file, from /proc/locks: "pid 123 (ansible-playbook)"."""
    status = os.fstat(fd)
    wanted = "%02x:%02x:%d" % (os.major(status.st_dev), os.minor(status.st_dev), status.st_ino)
    found = []
    try:
        with open("/proc/locks") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == wanted and fields[4].isdigit():
            found.append("pid %s (%s)" % (fields[4], _command(fields[4])))
    return ", ".join(found)


def _command(pid: str) -> str:
    try:
        with open("/proc/%s/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return "gone"
