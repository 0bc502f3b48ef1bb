"""The suite runs in a network and mount namespace of its own (tests/isolated.py, as make test runs
it): what it creates is not on the real host, and what others create there is not in what it sees."""

from __future__ import annotations

import os
import subprocess

import pytest

ISOLATED = os.environ.get("LINUXNET_TEST_ISOLATED") == "1"
HOST = "/proc/1/root"  # PID 1's view of the file system: the real host's mounts


@pytest.mark.skipif(not ISOLATED, reason="not run under tests/isolated.py (make test does)")
def test_a_namespace_made_here_is_not_bound_on_the_host(prefix: str) -> None:
    name = prefix + "iso"
    subprocess.run(["ip", "netns", "add", name], check=True)
    assert os.path.exists("/run/netns/" + name)
    assert not os.path.exists(HOST + "/run/netns/" + name)
    assert os.stat("/proc/self/ns/net").st_ino != os.stat("/proc/1/ns/net").st_ino
    assert os.stat("/proc/self/ns/mnt").st_ino != os.stat("/proc/1/ns/mnt").st_ino
