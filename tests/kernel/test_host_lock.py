"""The host lock (issue 15, item 4): it lives where only root can make entries, is never taken
through a link, a FIFO or a directory someone planted, and a run stuck behind it says who holds it."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from typing import Any

import pytest
from helpers import COLLECTIONS, MODULE_PYTHON, leftovers, restore_program as restore, save_spec

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.system import host_lock
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError


def take(directory: str, shared: bool = False, timeout: float = 1.0) -> None:
    with host_lock.host_lock(shared=shared, directory=directory, timeout=timeout):
        pass


def test_the_lock_is_made_root_only_whatever_the_umask(tmp_path: Any) -> None:
    directory = str(tmp_path / "lockdir")
    old = os.umask(0)
    try:
        take(directory)
    finally:
        os.umask(old)
    assert os.stat(directory).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(directory, "lock")).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("plant", ["symlink", "foreign owner", "writable by others", "fifo", "directory"])
def test_a_planted_lock_is_refused_naming_it(plant: str, tmp_path: Any) -> None:
    directory = str(tmp_path / "lockdir")
    victim = tmp_path / "victim"
    victim.mkdir()
    if plant == "symlink":
        os.symlink(str(victim), directory)
    else:
        os.mkdir(directory, 0o700)
    if plant == "foreign owner":
        os.chown(directory, 65534, 65534)
    elif plant == "writable by others":
        os.chmod(directory, 0o777)
    elif plant == "fifo":
        os.mkfifo(os.path.join(directory, "lock"), 0o600)
    elif plant == "directory":
        os.mkdir(os.path.join(directory, "lock"))
    started = time.monotonic()
    with pytest.raises(NetnsError) as failure:
        take(directory)
    assert time.monotonic() - started < 5  # never blocks on a FIFO
    assert failure.value.obj in (directory, os.path.join(directory, "lock"))
    assert os.listdir(str(victim)) == []  # nothing made where a link pointed


HOLDER = r"""
import sys, time
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.system.host_lock import host_lock
with host_lock(directory=sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_run_stuck_behind_the_lock_names_its_holder(tmp_path: Any) -> None:
    directory = str(tmp_path / "lockdir")
    holder = subprocess.Popen([MODULE_PYTHON, "-c", HOLDER, directory], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=COLLECTIONS))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(NetnsError, match=r"held by pid %d \(python" % holder.pid):
            take(directory, timeout=0.5)
        with pytest.raises(NetnsError, match="held by pid %d" % holder.pid):
            take(directory, shared=True, timeout=0.3)  # a check waits for a change under way too
    finally:
        holder.kill()
        holder.wait()
    take(directory)  # the kernel released it with its holder


def test_a_check_takes_no_lock_where_none_was_ever_made(tmp_path: Any) -> None:
    directory = str(tmp_path / "lockdir")
    take(directory, shared=True)
    assert not os.path.exists(directory)  # a check writes nothing


def test_a_lock_held_in_the_world_writable_run_lock_stalls_nothing(prefix: str, tmp_path: Any) -> None:
    """Where the lock used to be (/run/lock, mode 1777), anybody could hold it first."""
    old = "/run/lock/linuxnet-netns.lock"
    existed = os.path.exists(old)
    fd = os.open(old, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        path, state = save_spec(tmp_path, {"name": prefix + "lk", "namespaces": [{"name": prefix + "a"}]})
        applied = restore("apply", path, "--state-dir", state)
        assert applied.returncode == 0, applied.stderr
        status = os.lstat(host_lock.LOCK_DIR)
        assert status.st_uid == 0 and status.st_mode & 0o777 == 0o700
        assert restore("teardown", path, "--state-dir", state).returncode == 0
        assert leftovers(prefix) == []
    finally:
        os.close(fd)
        if not existed:
            os.unlink(old)


def test_the_lock_is_reentrant_within_one_process(tmp_path: Any) -> None:
    directory = str(tmp_path / "lockdir")
    with host_lock.host_lock(directory=directory):
        take(directory, timeout=0.2)  # would time out if a second flock were taken
    take(directory, timeout=0.2)  # and it is released with the outer one
