"""Run a command (the real-kernel tests) in a network and mount namespace of its own, with private
/run/netns, /run/linuxnet-netns, /etc/netns and /var/lib/linuxnet-netns: namespaces, links, rules
and files other software makes on a busy host (container runtimes, another test run) are not in
what the tests compare, and nothing the tests make is bound on the real host.

    python tests/isolated.py COMMAND [ARG...]
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List

# Each with the mode the engine gives it (the host lock's directory is root's alone).
PRIVATE_DIRS = {"/run/netns": 0o755, "/run/linuxnet-netns": 0o700, "/etc/netns": 0o755, "/var/lib/linuxnet-netns": 0o755}
MARK = "LINUXNET_TEST_ISOLATED"
HOST_VIEW = "LINUXNET_TEST_HOST_VIEW"  # what the host is, for tests/kernel/test_isolation.py


def host_view() -> str:
    """The host's network namespace and the device of its /run/netns, as "INODE DEVICE"."""
    return "%d %d" % (os.stat("/proc/self/ns/net").st_ino, os.stat("/run/netns").st_dev)


def outside(command: List[str]) -> int:
    """Re-run this program in new namespaces; afterwards remove the mount points it had to make."""
    made = [path for path in PRIVATE_DIRS if not os.path.isdir(path)]
    for path in made:
        os.makedirs(path, mode=PRIVATE_DIRS[path])
    try:
        return subprocess.call(["unshare", "--mount", "--net", "--propagation", "private", "--",
                                sys.executable, os.path.abspath(__file__)] + command,
                               env=dict(os.environ, **{MARK: "1", HOST_VIEW: host_view()}))
    finally:
        for path in reversed(made):
            try:
                os.rmdir(path)
            except OSError:
                print("isolated.py: %s is not empty; left in place" % path, file=sys.stderr)


def inside(command: List[str]) -> None:
    for path, mode in PRIVATE_DIRS.items():
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=%o,nosuid,nodev" % mode, "linuxnet-test", path], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.execvp(command[0], command)


def main() -> int:
    command = sys.argv[1:]
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    if os.environ.get(MARK) == "1":
        inside(command)
    return outside(command)


if __name__ == "__main__":
    sys.exit(main())
