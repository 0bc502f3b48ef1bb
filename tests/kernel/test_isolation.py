"""The suite runs in a network and mount namespace of its own (tests/isolated.py, as make test runs
it): what it creates is not on the real host, and what others create there is not in what it sees."""

from __future__ import annotations

import os
import subprocess

import pytest

ISOLATED = os.environ.get("LINUXNET_TEST_ISOLATED") == "1"


@pytest.mark.skipif(not ISOLATED, reason="not run under tests/isolated.py (make test does)")
def test_a_namespace_made_here_is_not_bound_on_the_host(prefix: str) -> None:
    host_netns, host_run_netns = (int(v) for v in os.environ["LINUXNET_TEST_HOST_VIEW"].split())
    name = prefix + "iso"
    subprocess.run(["ip", "netns", "add", name], check=True)
    # Bound on this run's own /run/netns (a tmpfs of its mount namespace), not on the host's.
    assert os.stat("/run/netns/" + name).st_ino != host_netns
    assert os.stat("/run/netns").st_dev != host_run_netns
    assert os.stat("/proc/self/ns/net").st_ino != host_netns
