"""Real systemd test hosts for the Molecule scenario: Debian 12 booted with ``systemd-nspawn -b``.

    python3 nspawn_hosts.py rootfs                 build the cached Debian 12 rootfs (once, debootstrap)
    python3 nspawn_hosts.py up NAME INDEX KEY.pub  copy the rootfs, boot NAME, wait until SSH answers
    python3 nspawn_hosts.py down NAME              power NAME off and remove everything made for it
    python3 nspawn_hosts.py address INDEX          print the instance's management address

Each instance reaches the controller over its own veth pair, made by ``--network-veth``
(``ve-NAME`` here, ``host0`` inside) with a static /30: 10.249.INDEX.1 here, .2 inside. A
supervisor process per instance starts nspawn again when it exits with 133 (``systemctl reboot``
inside), so a reboot is a real shutdown and a real boot on the same rootfs. The host's PID 1 is not
systemd, hence ``--register=no --keep-unit``.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from typing import List, Optional

CACHE = os.environ.get("LINUXNET_ROOTFS_CACHE", "/var/cache/linuxnet-netns")
ROOTFS = os.path.join(CACHE, "debian-bookworm-rootfs")
WORK = os.environ.get("LINUXNET_MOLECULE_WORK", "/var/tmp/linuxnet-molecule")
SUITE = "bookworm"
PACKAGES = ["systemd", "systemd-sysv", "dbus", "iproute2", "iputils-ping", "python3", "python3-pyroute2",
            "iptables", "openssh-server", "ca-certificates"]
REBOOT_STATUS = 133
MANAGEMENT_NET = "10.249"


def address(index: int, inside: bool = True) -> str:
    return "%s.%d.%d" % (MANAGEMENT_NET, index, 2 if inside else 1)


def apt_mirror() -> str:
    """The Debian mirror this machine's apt already uses (deb822 .sources files or sources.list)."""
    candidates: List[str] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as handle:
            for stanza in handle.read().split("\n\n"):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, flags=re.M))
                if SUITE in fields.get("Suites", "").split() and "main" in fields.get("Components", "").split():
                    candidates.extend(fields.get("URIs", "").split())
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            with open(path) as handle:
                for line in handle:
                    match = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+%s\s" % SUITE, line)
                    if match:
                        candidates.append(match.group(1))
    debian = [uri for uri in candidates if "security" not in uri]
    if not debian:
        sys.exit("no Debian %s mirror in this machine's apt sources" % SUITE)
    return debian[0]


def build_rootfs() -> None:
    """Debian 12 with systemd, sshd, python3, Debian's pyroute2 (0.7.2) and iptables, cached."""
    if os.path.exists(os.path.join(ROOTFS, ".complete")):
        return
    staging = ROOTFS + ".partial"
    remove_tree(staging)
    os.makedirs(CACHE, exist_ok=True)
    mirror = apt_mirror()
    print("debootstrap %s from %s" % (SUITE, mirror), flush=True)
    subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, staging, mirror],
                   check=True, stdout=subprocess.DEVNULL)
    # networkd configures host0 from the per-instance file written at `up`
    wants = os.path.join(staging, "etc/systemd/system/multi-user.target.wants")
    os.makedirs(wants, exist_ok=True)
    _symlink("/lib/systemd/system/systemd-networkd.service", os.path.join(wants, "systemd-networkd.service"))
    _symlink("/lib/systemd/system/ssh.service", os.path.join(wants, "ssh.service"))
    # nothing inside should wait for a network that this harness configures statically
    _symlink("/dev/null", os.path.join(staging, "etc/systemd/system/systemd-networkd-wait-online.service"))
    with open(os.path.join(staging, ".complete"), "w") as handle:
        handle.write(mirror + "\n")
    remove_tree(ROOTFS)
    os.rename(staging, ROOTFS)


def mounts_under(path: str) -> List[str]:
    """Mount points at or below ``path``, deepest first (an interrupted debootstrap leaves /proc mounted)."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mounts") as handle:
        for line in handle:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: str) -> None:
    """Unmount what is mounted inside ``path``, then delete it; never recurse into a live mount."""
    for point in mounts_under(path):
        subprocess.run(["umount", "--lazy", point], check=False)
    if mounts_under(path):
        sys.exit("%s: still has mounts inside, not removing it" % path)
    shutil.rmtree(path, ignore_errors=True)


def _symlink(target: str, path: str) -> None:
    if not os.path.lexists(path):
        os.symlink(target, path)


def _instance_dir(name: str) -> str:
    return os.path.join(WORK, name)


def prepare_instance(name: str, index: int, public_key: str) -> str:
    root = os.path.join(_instance_dir(name), "rootfs")
    remove_tree(_instance_dir(name))
    os.makedirs(_instance_dir(name))
    subprocess.run(["cp", "-a", "--reflink=auto", ROOTFS, root], check=True)
    with open(os.path.join(root, "etc/hostname"), "w") as handle:
        handle.write(name + "\n")
    with open(os.path.join(root, "etc/systemd/network/10-host0.network"), "w") as handle:
        handle.write("[Match]\nName=host0\n\n[Network]\nAddress=%s/30\nLinkLocalAddressing=no\n" % address(index))
    ssh = os.path.join(root, "root/.ssh")
    os.makedirs(ssh, mode=0o700, exist_ok=True)
    shutil.copy(public_key, os.path.join(ssh, "authorized_keys"))
    os.chmod(os.path.join(ssh, "authorized_keys"), 0o600)
    # Remounting / per fstab means nothing in a container and once failed there (a degraded
    # system, which verify rejects): not part of what this scenario tests.
    _symlink("/dev/null", os.path.join(root, "etc/systemd/system/systemd-remount-fs.service"))
    # a machine-id of its own (an empty one would make systemd treat every boot as the first)
    with open(os.path.join(root, "etc/machine-id"), "w") as handle:
        handle.write(uuid.uuid4().hex + "\n")
    return root


# cgroup hierarchies nspawn and the container's systemd use: the named systemd one (cgroup v1 or
# hybrid), the unified one of a hybrid host, or /sys/fs/cgroup itself on a pure cgroup v2 host.
HIERARCHIES = (("/sys/fs/cgroup/systemd", "name=systemd"), ("/sys/fs/cgroup/unified", ""), ("/sys/fs/cgroup", ""))


def instance_cgroups(name: str) -> List[str]:
    """A cgroup of its own for each instance. Without a host systemd (--keep-unit) nspawn hands the
    container the cgroup it runs in; three containers in one cgroup remove each other's unit
    cgroups at boot ("Failed to attach to cgroup /system.slice/...: No such file or directory",
    a failed unit, a degraded host)."""
    mine = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _number, controllers, path = line.rstrip("\n").split(":", 2)
            mine[controllers] = path
    made = []
    for mount, key in HIERARCHIES:
        if key in mine and os.path.exists(os.path.join(mount, "cgroup.procs")):
            path = os.path.join(mount + mine[key].rstrip("/"), "linuxnet-molecule-" + name)
            os.makedirs(path, exist_ok=True)
            made.append(path)
    return made


def remove_cgroups(paths: List[str]) -> None:
    """rmdir each cgroup and what the container's systemd made inside it, deepest first."""
    for top in paths:
        for directory, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(directory)
            except OSError:
                pass


SUPERVISOR = r"""
set -u
for cgroup in $CGROUPS; do echo $$ >"$cgroup/cgroup.procs"; done
while true; do
  systemd-nspawn -b -q -D "$ROOT" --machine="$NAME" --register=no --keep-unit --network-veth \
      >>"$LOG" 2>&1 &
  child=$!
  echo $child >"$DIR/nspawn.pid"
  for _ in $(seq 1 200); do
    ip link show "ve-$NAME" >/dev/null 2>&1 && break
    sleep 0.05
  done
  ip addr replace "$HOSTADDR/30" dev "ve-$NAME" && ip link set "ve-$NAME" up
  wait $child
  status=$?
  echo "nspawn exited with $status" >>"$LOG"
  [ "$status" -eq 133 ] && [ ! -e "$DIR/stop" ] || break
done
rm -f "$DIR/nspawn.pid"
"""


def boot(name: str, index: int, root: str) -> None:
    directory = _instance_dir(name)
    cgroups = instance_cgroups(name)
    with open(os.path.join(directory, "cgroups"), "w") as handle:
        handle.write("\n".join(cgroups) + "\n")
    env = dict(os.environ, ROOT=root, NAME=name, DIR=directory, LOG=os.path.join(directory, "console.log"),
               HOSTADDR=address(index, inside=False), CGROUPS=" ".join(cgroups))
    supervisor = subprocess.Popen(["bash", "-c", SUPERVISOR], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    with open(os.path.join(directory, "supervisor.pid"), "w") as handle:
        handle.write("%d\n" % supervisor.pid)


def wait_for_ssh(host: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, 22), timeout=2) as conn:
                if conn.recv(4).startswith(b"SSH"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("%s: SSH did not answer within %ds" % (host, timeout))


def _read_pid(path: str) -> Optional[int]:
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: Optional[int]) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def down(name: str, timeout: float = 60.0) -> None:
    """Power off (nspawn turns SIGTERM into an orderly shutdown of the container), then remove."""
    directory = _instance_dir(name)
    if os.path.isdir(directory):
        open(os.path.join(directory, "stop"), "w").close()  # the supervisor must not boot it again
    nspawn = _read_pid(os.path.join(directory, "nspawn.pid"))
    supervisor = _read_pid(os.path.join(directory, "supervisor.pid"))
    if _alive(nspawn):
        os.kill(nspawn, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(nspawn) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(nspawn):
            os.kill(nspawn, signal.SIGKILL)
    if _alive(supervisor):
        try:
            os.killpg(supervisor, signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "link", "delete", "ve-" + name], stderr=subprocess.DEVNULL, check=False)
    try:
        with open(os.path.join(directory, "cgroups")) as handle:
            remove_cgroups(handle.read().split())
    except OSError:
        pass
    remove_tree(directory)


def main(argv: List[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    command = argv[0]
    if command == "rootfs":
        build_rootfs()
    elif command == "up":
        name, index, key = argv[1], int(argv[2]), argv[3]
        build_rootfs()
        down(name)
        root = prepare_instance(name, index, key)
        boot(name, index, root)
        wait_for_ssh(address(index))
    elif command == "down":
        down(argv[1])
    elif command == "address":
        print(address(int(argv[1])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
