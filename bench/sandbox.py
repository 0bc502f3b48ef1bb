"""A mount, network and PID namespace of the bench's own, for a contender that must not see the host.

ifstate deletes every namespace in /run/netns that its config does not name (unless its ignore list
matches it), and takes PID 1's network namespace as its root one: it binds /proc/1/ns/net on
/run/netns/ifstate.root.XXXX and asks netlink for the ids of namespaces "by pid 1". Run on the host,
that is the host's init; run inside another network namespace only, it is a namespace it did not
make (and binding it from there fails with EACCES). In this sandbox PID 1 is the sandbox's own
holder process (a PID namespace with its own /proc), so ifstate's root is the sandbox's network
namespace, and /run is a tmpfs of the sandbox's mount namespace: ifstate sees no namespace but the
bench's, and nothing it binds or writes under /run reaches the host. The host's /run/netns is listed
before and after; a difference fails the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import List

# The sandbox's PID 1: a private /run with a /run/netns, lo up, then it only waits.
HOLDER = ("mount -t tmpfs -o mode=755,nosuid,nodev linuxnet-bench /run && mkdir -m 755 /run/netns"
          " && ip link set lo up && echo ready && exec sleep infinity")


def host_namespaces() -> List[str]:
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


class Sandbox:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # the names of the contender's namespaces
        self.before = host_namespaces()
        self.unshare = subprocess.Popen(["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc",
                                         "--propagation", "private", "--", "sh", "-c", HOLDER],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.unshare.stdout is None or self.unshare.stdout.readline().strip() != "ready":
            self.unshare.wait()
            raise SystemExit("the sandbox did not start (unshare exited %s)" % self.unshare.returncode)
        with open("/proc/%d/task/%d/children" % (self.unshare.pid, self.unshare.pid)) as handle:
            self.pid = int(handle.read().split()[0])  # the holder, PID 1 inside

    def command(self, argv: List[str]) -> List[str]:
        """``argv`` run inside the sandbox (nsenter forks it into the PID namespace)."""
        return ["nsenter", "--target", str(self.pid), "--mount", "--net", "--pid", "--"] + argv

    def close(self) -> None:
        """Deletes the sandbox's namespaces, ends the holder (and with it the sandbox), checks the host."""
        subprocess.run(self.command(["ip", "-all", "netns", "delete"]), stdout=subprocess.DEVNULL, check=False)
        os.kill(self.pid, signal.SIGKILL)
        self.unshare.wait()
        if self.unshare.stdout is not None:
            self.unshare.stdout.close()
        after = host_namespaces()
        # Other jobs on the host may add namespaces meanwhile; none may go, and none of the contender's may come.
        gone = sorted(set(self.before) - set(after))
        ours = [n for n in after if n not in self.before and n.startswith((self.prefix, "ifstate"))]
        if gone or ours:
            raise SystemExit("the host's /run/netns changed around the sandbox: gone %s, new %s" % (gone, ours))
