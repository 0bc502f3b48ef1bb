# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files of state only root may write, read and written without following links.

A file or directory is trusted when root (or the user running us) owns it and no one else can
write it: anyone who could write there could make root restore their firewall rules or delete a
namespace this topology never created. The last component of a path is never followed when it is
a symbolic link, and nothing but a regular file is ever opened (a FIFO would block a read forever).
Writes replace a file whole: a temporary file beside it, renamed over it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from typing import Optional

from ..errors import NetnsError

TRUSTED_FILE_LIMIT = 64 << 20
TEXT_FILE_LIMIT = 1 << 20
_TEMPORARY = "%s.tmp.%d"  # NAME.tmp.PID beside its target; any such file is a killed run's
_KINDS = ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"),
          (stat.S_ISREG, "a regular file"))


def read_trusted(path: str) -> Optional[str]:
    """The text of a trusted file, None when it (or its directory) does not exist; NetnsError
    naming the file or its directory when either is not trusted or the file is not a regular one."""
    data = read_trusted_bytes(path)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NetnsError("is not UTF-8 text (%s)" % exc.reason, obj=path) from None


def read_trusted_bytes(path: str, limit: int = TRUSTED_FILE_LIMIT) -> Optional[bytes]:
    """``read_trusted`` without decoding."""
    return _read(path, trusted=True, limit=limit)


def read_secret(path: str, limit: int = TEXT_FILE_LIMIT) -> Optional[bytes]:
    """``read_trusted_bytes`` of a file that holds a secret: nobody but its owner (root) may read it
    either. The error names the file, never its content."""
    return _read(path, trusted=True, limit=limit, private=True)


def check_trusted_socket(path: str) -> None:
    """NetnsError naming ``path`` unless it is a unix socket root owns, that no one else can write,
    in a trusted directory (a daemon's control socket: whoever made it would hear our secrets)."""
    check_directory(os.path.dirname(os.path.abspath(path)))
    try:
        found = os.lstat(path)
    except OSError as exc:
        raise NetnsError("cannot look at", obj=path, errno=exc.errno) from None
    if not stat.S_ISSOCK(found.st_mode):
        raise NetnsError("is %s, not a socket" % _kind(found.st_mode), obj=path)
    reason = _distrust(found)
    if reason is not None:
        raise _untrusted(path, reason, "socket")


def read_regular_file(path: str, limit: int = TEXT_FILE_LIMIT) -> Optional[str]:
    """The text of a file anyone may own (/etc/netns/NAME/resolv.conf), None when it does not exist;
    NetnsError naming it when it, or its directory, is a symlink, or it is not a regular file."""
    data = _read(path, trusted=False, limit=limit)
    return None if data is None else data.decode("utf-8", "replace")


def ensure_directory(path: str, mode: int) -> None:
    """Create the missing directories of ``path`` with exactly ``mode`` (the umask does not apply);
    an existing ``path`` must be a trusted directory, not a symlink, else NetnsError naming it."""
    os.close(_open_directory(path, create_mode=mode))


def private_directory(path: str) -> None:
    """``ensure_directory`` for state: root's alone (0700)."""
    ensure_directory(path, 0o700)


def check_directory(path: str) -> None:
    """NetnsError naming ``path`` if it exists and is not a trusted directory; nothing is created."""
    fd = _open_directory(path, create_mode=None)
    if fd is not None:
        os.close(fd)


def write_file_atomically(path: str, content: str, mode: int = 0o644, directory_mode: int = 0o700) -> None:
    """Replace ``path`` whole (readers see the old file or the new one), with ``mode`` exactly, in
    its trusted directory (missing directories are made with ``directory_mode``). A symlink is never
    followed: not at the directory, the temporary file or the target (rename replaces the link).
    Temporaries a killed run left beside the target are removed first: every writer holds the host lock."""
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = _open_directory(directory, create_mode=directory_mode)
    try:
        _remove_stale_temporaries(dir_fd, name)
        temporary = _TEMPORARY % (name, os.getpid())
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
        except OSError as exc:
            raise NetnsError("cannot create the temporary file %s" % temporary, obj=path, errno=exc.errno) from None
        try:
            try:
                os.fchmod(fd, mode)
                _write_all(fd, content.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=dir_fd)
            raise NetnsError("cannot write", obj=path, errno=exc.errno) from None
    finally:
        os.close(dir_fd)


def remove_file(path: str) -> None:
    """Remove the trusted regular file ``path`` from its trusted directory; nothing when it is not
    there. NetnsError naming it when it is anything else (a symlink, a FIFO, another user's)."""
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = _open_directory(directory, create_mode=None)
    if dir_fd is None:
        return
    try:
        if _removable(dir_fd, name, path):
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise NetnsError("cannot remove", obj=path, errno=exc.errno) from None
    finally:
        os.close(dir_fd)


def check_removable(path: str) -> None:
    """NetnsError naming ``path`` when ``remove_file`` would refuse it."""
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = _open_directory(directory, create_mode=None)
    if dir_fd is not None:
        try:
            _removable(dir_fd, name, path)
        finally:
            os.close(dir_fd)


def _removable(dir_fd: int, name: str, path: str) -> bool:
    """Whether ``name`` is there to remove; NetnsError when it is not a trusted regular file."""
    try:
        found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(found.st_mode):
        raise NetnsError("is %s, not a regular file: not removed" % _kind(found.st_mode), obj=path)
    reason = _distrust(found)
    if reason is not None:
        raise _untrusted(path, reason, "file")
    return True


def is_regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _distrust(found: os.stat_result) -> Optional[str]:
    """Why a file or directory with this status is not trusted, or None."""
    if found.st_uid not in (0, os.geteuid()):
        return "owned by uid %d" % found.st_uid
    if found.st_mode & stat.S_IWOTH:
        return "writable by others"
    if found.st_mode & stat.S_IWGRP:
        return "writable by group"
    return None


def _untrusted(path: str, reason: str, what: str) -> NetnsError:
    return NetnsError("not trusted: %s (only a %s that root owns and no one else can write is used)"
                      % (reason, what), obj=path)


def _open_directory(path: str, create_mode: Optional[int]) -> Optional[int]:
    """A descriptor of the trusted directory ``path``, whose last component is never followed.
    Missing components are created with ``create_mode`` (set on the descriptor: no umask), or the
    answer is None when ``create_mode`` is None. NetnsError naming the component otherwise."""
    path = os.path.abspath(path)
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    parts = [part for part in path.split("/") if part]
    try:
        for index, part in enumerate(parts):
            here = "/" + "/".join(parts[:index + 1])
            last = index == len(parts) - 1
            child = _open_component(fd, part, here, last, create_mode)
            os.close(fd)
            fd = child
            if fd is None:
                return None
        reason = _distrust(os.fstat(fd))
        if reason is not None:
            raise _untrusted(path, reason, "directory")
        opened, fd = fd, None
        return opened
    finally:
        if fd is not None:
            os.close(fd)


def _open_component(parent: int, part: str, here: str, last: bool, create_mode: Optional[int]) -> Optional[int]:
    # Components above the last may be symlinks an administrator made (/var/run -> /run).
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if last else 0)
    try:
        return os.open(part, flags, dir_fd=parent)
    except FileNotFoundError:
        if create_mode is None:
            return None
    except OSError as exc:
        raise _not_a_directory(parent, part, here, exc) from None
    try:
        os.mkdir(part, 0o700, dir_fd=parent)
    except FileExistsError:  # made meanwhile, or a dangling symlink: judged like any existing one
        fd = _open_component(parent, part, here, last, None)
        if fd is None:
            raise NetnsError("cannot open the directory", obj=here, errno=errno.ENOENT) from None
        return fd
    except OSError as exc:
        raise NetnsError("cannot create the directory", obj=here, errno=exc.errno) from None
    try:
        fd = os.open(part, flags | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        raise _not_a_directory(parent, part, here, exc) from None
    os.fchmod(fd, create_mode)
    return fd


def _not_a_directory(parent: int, part: str, here: str, exc: OSError) -> NetnsError:
    try:
        found = os.stat(part, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return NetnsError("cannot open the directory", obj=here, errno=exc.errno)
    if exc.errno in (errno.ENOTDIR, errno.ELOOP) and not stat.S_ISDIR(found.st_mode):
        return NetnsError("is %s, not a directory" % _kind(found.st_mode), obj=here)
    return NetnsError("cannot open the directory", obj=here, errno=exc.errno)


def _read(path: str, trusted: bool, limit: int, private: bool = False) -> Optional[bytes]:
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = _open_directory(directory, create_mode=None) if trusted else _open_plain_directory(directory)
    if dir_fd is None:
        return None
    try:
        fd = _open_regular(dir_fd, name, path)
        if fd is None:
            return None
        try:
            found = os.fstat(fd)
            reason = _distrust(found) if trusted else None
            if reason is not None:
                raise _untrusted(path, reason, "file")
            if private and found.st_mode & (stat.S_IRGRP | stat.S_IROTH):
                raise NetnsError("not trusted: readable by %s (a secret's file must be root's alone, e.g. mode 0600)"
                                 % ("group" if found.st_mode & stat.S_IRGRP else "others"), obj=path)
            return _read_all(fd, path, limit)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def _open_plain_directory(path: str) -> Optional[int]:
    """A descriptor of the directory ``path`` (not followed when a symlink), whoever owns it."""
    head, part = os.path.split(path)
    try:
        parent = os.open(head, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NetnsError("cannot open the directory", obj=head, errno=exc.errno) from None
    try:
        return _open_component(parent, part, path, True, None)
    finally:
        os.close(parent)


def _open_regular(dir_fd: int, name: str, path: str) -> Optional[int]:
    """A descriptor of the regular file ``name``, None when there is none. Looked at before it is
    opened, so that no FIFO or device is ever opened; non-blocking should it be swapped meanwhile."""
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NetnsError("cannot look at", obj=path, errno=exc.errno) from None
    if not stat.S_ISREG(before.st_mode):
        raise NetnsError("is %s, not a regular file" % _kind(before.st_mode), obj=path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NetnsError("cannot open", obj=path, errno=exc.errno) from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or (found.st_dev, found.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise NetnsError("was replaced while being opened", obj=path)
    return fd


def _read_all(fd: int, path: str, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        try:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        except OSError as exc:
            raise NetnsError("cannot read", obj=path, errno=exc.errno) from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise NetnsError("is larger than %d bytes" % limit, obj=path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _remove_stale_temporaries(dir_fd: int, name: str) -> None:
    stale = re.compile(re.escape(name) + r"\.tmp\.[0-9]+")
    for entry in os.listdir(dir_fd):
        if stale.fullmatch(entry):
            with contextlib.suppress(OSError):  # a directory of that name is not ours to remove
                os.unlink(entry, dir_fd=dir_fd)
