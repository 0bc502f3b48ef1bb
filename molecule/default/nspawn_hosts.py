"""Real systemd test hosts for the Molecule scenario: Debian 12 and 13 booted with ``systemd-nspawn -b``.

    python3 nspawn_hosts.py rootfs SUITE IMAGE...           build the cached rootfs and the suite's local apt repository
    python3 nspawn_hosts.py up NAME INDEX KEY.pub SUITE IMAGE  copy the rootfs, boot NAME, wait until SSH answers
    python3 nspawn_hosts.py down NAME                        power NAME off and remove everything made for it
    python3 nspawn_hosts.py underlay | underlay-remove       make the bridge the hosts share / remove it once all are down
    python3 nspawn_hosts.py address INDEX                    print the instance's management address

SUITE is a Debian release (bookworm: systemd 252, trixie: systemd 257), debootstrapped from the
Debian mirror of this machine's apt sources. IMAGE is ``bare`` (no python3-pyroute2 and no python3-apt: the
role must install it) or ``full`` (the bare image with python3-pyroute2 installed).
Each suite has a local apt repository built here (``apt-get install --download-only`` of what the
bare image lacks, indexed with dpkg-scanpackages), bind-mounted read-only into every instance as
its only apt source, so no instance needs a network beyond this machine.

Each instance reaches the controller over its own veth pair, made by ``--network-veth``
(``ve-NAME`` here, ``host0`` inside) with a static /30: 10.249.INDEX.1 here, .2 inside. Two more
pairs (``--network-veth-extra``) join every instance to one bridge here: ``ul0`` (10.248.0.INDEX/24),
the hosts' own network that vxlan and WireGuard run over, and ``nic0``, unconfigured, the NIC a
topology moves into a namespace. /dev/net/tun is bound in for wireguard-go. A
supervisor process per instance starts nspawn again when it exits with 133 (``systemctl reboot``
inside), so a reboot is a real shutdown and a real boot on the same rootfs. The host's PID 1 is not
systemd, hence ``--register=no --keep-unit``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Callable, Dict, List, Optional, Tuple

CACHE = os.environ.get("LINUXNET_ROOTFS_CACHE", "/var/cache/linuxnet-netns")
WORK = os.environ.get("LINUXNET_MOLECULE_WORK", "/var/tmp/linuxnet-molecule")
SUITES = ("bookworm", "trixie")
IMAGES = ("bare", "full")
# What every image has: a booting systemd, sshd and python3 for Ansible, iproute2 and ping for the
# inspector, and iptables: without it the engine cannot normalise a topology's rules, so check mode
# (the scenario's first step, on hosts the role has not installed anything on) would fail.
BASE_PACKAGES = ["systemd", "systemd-sysv", "dbus", "iproute2", "iputils-ping", "python3", "openssh-server",
                 "ca-certificates", "iptables"]
# What the role installs (topology_packages) and what Ansible's apt module installs for itself
# (python3-apt) on a bare image; a full image has them already.
# nftables and wireguard: what the role installs when a topology declares tables or a WireGuard link.
REPO_PACKAGES = ["python3-pyroute2", "iptables", "python3-apt", "nftables", "python3-nftables", "wireguard-go",
                 "wireguard-tools"]
# A full image also has nft (check mode, before the role has installed anything, canonicalises a
# topology's nftables tables with it, as it does iptables rules with iptables) and WireGuard.
FULL_PACKAGES = ["python3-pyroute2", "nftables", "python3-nftables", "wireguard-go", "wireguard-tools"]
# Inside every instance, the suite's repository (read-only bind mount of the cached one).
REPO_MOUNT = "/srv/linuxnet-netns-repo"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
REBOOT_STATUS = 133
MANAGEMENT_NET = "10.249"
# Every instance's second and third links: ul0 (the underlay the hosts' vxlan and WireGuard run
# over, 10.248.0.INDEX/24) and nic0 (a NIC for a topology to move into a namespace, unconfigured).
# Their ends here (vu-NAME, vn-NAME) are ports of one bridge, so the hosts share one Ethernet
# segment that nothing else is on; the bridge has no address and forwards nothing to this machine.
UNDERLAY_BRIDGE = "lnm-underlay"
UNDERLAY_NET = "10.248.0"


def address(index: int, inside: bool = True) -> str:
    return "%s.%d.%d" % (MANAGEMENT_NET, index, 2 if inside else 1)


def rootfs_dir(suite: str, image: str) -> str:
    return os.path.join(CACHE, "debian-%s-%s-rootfs" % (suite, image))


def repo_dir(suite: str) -> str:
    """Named after what it holds: a cached repository of an older package list is not taken for it."""
    content = hashlib.sha256(" ".join(sorted(REPO_PACKAGES)).encode()).hexdigest()[:8]
    return os.path.join(CACHE, "debian-%s-repo-%s" % (suite, content))


def _host_codename() -> str:
    with open("/etc/os-release") as handle:
        fields = dict(re.findall(r"^([A-Z_]+)=\"?([^\"\n]*)\"?$", handle.read(), flags=re.M))
    return fields.get("VERSION_CODENAME", "")


def _sources() -> List[Dict[str, List[str]]]:
    """Every deb entry of this machine's apt sources as {uris, suites, components}."""
    entries: List[Dict[str, List[str]]] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as handle:
            for stanza in handle.read().split("\n\n"):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, flags=re.M))
                if "deb" in fields.get("Types", "").split():
                    entries.append({"uris": fields.get("URIs", "").split(), "suites": fields.get("Suites", "").split(),
                                    "components": fields.get("Components", "").split()})
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            with open(path) as handle:
                for line in handle:
                    match = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line)
                    if match:
                        entries.append({"uris": [match.group(1)], "suites": [match.group(2)],
                                        "components": match.group(3).split()})
    return entries


def apt_mirror(suite: str) -> str:
    """The Debian mirror this machine's apt already uses: the one listing ``suite`` (main), else the
    one serving this machine's own release (a Debian mirror serves every release)."""
    entries = [entry for entry in _sources() if "main" in entry["components"]]
    for wanted in (suite, _host_codename()):
        for entry in entries:
            if wanted and wanted in entry["suites"]:
                debian = [uri for uri in entry["uris"] if "security" not in uri]
                if debian:
                    return debian[0]
    sys.exit("no Debian mirror for %s in this machine's apt sources" % suite)


def build_rootfs(suite: str, image: str) -> None:
    """The suite's bare rootfs (debootstrap), its local repository, and the image asked for."""
    bare = rootfs_dir(suite, "bare")
    _build_bare(suite)
    if _build_repo(suite):
        remove_tree(rootfs_dir(suite, "full"))  # made from an older repository
    # apt's lists of the local repository, as a host has them for its sources (the role does not
    # update the package cache)
    if not glob.glob(os.path.join(bare, "var/lib/apt/lists/*Packages")):
        _in_rootfs(bare, suite, ["apt-get", "-q", "update"])
    if image == "full":
        _build_full(suite)


def _cached_build(target: str, build: Callable[[str], str]) -> bool:
    """TARGET, built once: BUILD fills a fresh staging directory and returns what it was made from.
    Only a finished build is marked and renamed into place, so an interrupted one starts again.
    True when it was built now."""
    if os.path.exists(os.path.join(target, ".complete")):
        return False
    staging = target + ".partial"
    remove_tree(staging)
    os.makedirs(CACHE, exist_ok=True)
    _mark_complete(staging, build(staging))
    remove_tree(target)
    os.rename(staging, target)
    return True


def _build_bare(suite: str) -> None:
    """Debian SUITE with systemd, sshd, python3 and iproute2, its apt pointed at the local repository."""
    _cached_build(rootfs_dir(suite, "bare"), lambda staging: _debootstrap(suite, staging))


def _debootstrap(suite: str, staging: str) -> str:
    """The bare rootfs into STAGING; returns the mirror it came from."""
    mirror = apt_mirror(suite)
    print("debootstrap %s from %s" % (suite, mirror), flush=True)
    subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), suite, staging, mirror],
                   check=True, stdout=subprocess.DEVNULL)
    # networkd configures host0 from the per-instance file written at `up`
    wants = os.path.join(staging, "etc/systemd/system/multi-user.target.wants")
    os.makedirs(wants, exist_ok=True)
    _symlink("/lib/systemd/system/systemd-networkd.service", os.path.join(wants, "systemd-networkd.service"))
    _symlink("/lib/systemd/system/ssh.service", os.path.join(wants, "ssh.service"))
    # nothing inside should wait for a network that this harness configures statically
    _symlink("/dev/null", os.path.join(staging, "etc/systemd/system/systemd-networkd-wait-online.service"))
    # The local repository is the only source. trusted=yes: it is not signed, but every .deb in it was
    # verified against the mirror's signed index when apt downloaded it here, and it is root's
    # cache, mounted read-only.
    with open(os.path.join(staging, "etc/apt/sources.list"), "w") as handle:
        handle.write("deb [trusted=yes] file:%s ./\n" % REPO_MOUNT)
    for stale in glob.glob(os.path.join(staging, "var/lib/apt/lists/*_dists_*")):
        os.unlink(stale)
    return mirror


def _build_repo(suite: str) -> bool:
    """What a bare instance of SUITE lacks of REPO_PACKAGES (and their dependencies), downloaded
    with apt from the mirror against the bare rootfs's dpkg status, indexed as a flat repository.
    True when it was built now."""
    return _cached_build(repo_dir(suite), lambda staging: _download_repo(suite, staging))


def _download_repo(suite: str, staging: str) -> str:
    """The repository's packages and index into STAGING; returns the mirror they came from."""
    os.makedirs(os.path.join(staging, "partial"))
    mirror = apt_mirror(suite)
    with tempfile.TemporaryDirectory(prefix="linuxnet-apt-") as state:
        options = _apt_options(state, suite, mirror, rootfs_dir(suite, "bare"), staging)
        subprocess.run(["apt-get", "-q"] + options + ["update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "-q", "-y", "--download-only", "--no-install-recommends"] + options
                       + ["install"] + REPO_PACKAGES, check=True, stdout=subprocess.DEVNULL)
    os.rmdir(os.path.join(staging, "partial"))
    if os.path.exists(os.path.join(staging, "lock")):
        os.unlink(os.path.join(staging, "lock"))
    if not glob.glob(os.path.join(staging, "*.deb")):
        sys.exit("%s: apt downloaded nothing for %s" % (suite, " ".join(REPO_PACKAGES)))
    index = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=staging, check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    with open(os.path.join(staging, "Packages"), "wb") as handle:
        handle.write(index)
    # A Release file with the index's hash: apt takes a flat repository without one only grudgingly.
    with open(os.path.join(staging, "Release"), "w") as handle:
        handle.write("Origin: linuxnet-netns-molecule\nLabel: %s packages for the Molecule hosts\nSuite: %s\n"
                     "Date: %s\nSHA256:\n %s %d Packages\n" % (
                         suite, suite, time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()),
                         hashlib.sha256(index).hexdigest(), len(index)))
    return mirror


def _apt_options(state: str, suite: str, mirror: str, rootfs: str, archives: str) -> List[str]:
    """apt on this machine, but for SUITE from MIRROR only, resolving against ROOTFS's installed packages."""
    for sub in ("lists/partial", "cache", "parts"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    signed = "[signed-by=%s] " % KEYRING if os.path.exists(KEYRING) else ""
    with open(os.path.join(state, "sources.list"), "w") as handle:
        handle.write("deb %s%s %s main\n" % (signed, mirror, suite))
    settings = {
        "Dir::Etc::SourceList": os.path.join(state, "sources.list"),
        "Dir::Etc::SourceParts": os.path.join(state, "parts"),
        "Dir::Etc::Preferences": os.path.join(state, "preferences"),
        "Dir::Etc::PreferencesParts": os.path.join(state, "parts"),
        "Dir::State": state,
        "Dir::State::status": os.path.join(rootfs, "var/lib/dpkg/status"),
        "Dir::Cache": os.path.join(state, "cache"),
        "Dir::Cache::archives": archives,
        "APT::Architecture": subprocess.run(["dpkg", "--print-architecture"], check=True, stdout=subprocess.PIPE,
                                            universal_newlines=True).stdout.strip(),
        "APT::Sandbox::User": "root",  # the temporary state directory is root's
        "Debug::NoLocking": "true",  # a private copy of the state; the rootfs's dpkg is not running
    }
    return [arg for key, value in settings.items() for arg in ("-o", "%s=%s" % (key, value))]


def _build_full(suite: str) -> None:
    """The bare image with FULL_PACKAGES installed from the local repository (offline)."""
    _cached_build(rootfs_dir(suite, "full"), lambda staging: _install_full(suite, staging))


def _install_full(suite: str, staging: str) -> str:
    """A copy of the bare rootfs into STAGING with FULL_PACKAGES installed."""
    subprocess.run(["cp", "-a", "--reflink=auto", rootfs_dir(suite, "bare"), staging], check=True)
    os.unlink(os.path.join(staging, ".complete"))
    _in_rootfs(staging, suite, ["apt-get", "-q", "-y", "--no-install-recommends", "install"] + FULL_PACKAGES)
    return "full image of %s" % suite


def _in_rootfs(root: str, suite: str, argv: List[str]) -> None:
    """A command inside ROOT (not booted), with the suite's repository where instances have it."""
    subprocess.run(["systemd-nspawn", "-q", "-D", root, "--register=no", "--keep-unit", "--private-network",
                    "--bind-ro=%s:%s" % (repo_dir(suite), REPO_MOUNT),
                    "--setenv=DEBIAN_FRONTEND=noninteractive"] + argv, check=True, stdout=subprocess.DEVNULL)


def _mark_complete(path: str, origin: str) -> None:
    with open(os.path.join(path, ".complete"), "w") as handle:
        handle.write(origin + "\n")


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


def prepare_instance(name: str, index: int, public_key: str, suite: str, image: str) -> str:
    root = os.path.join(_instance_dir(name), "rootfs")
    remove_tree(_instance_dir(name))
    os.makedirs(_instance_dir(name))
    subprocess.run(["cp", "-a", "--reflink=auto", rootfs_dir(suite, image), root], check=True)
    with open(os.path.join(root, "etc/hostname"), "w") as handle:
        handle.write(name + "\n")
    with open(os.path.join(root, "etc/systemd/network/10-host0.network"), "w") as handle:
        handle.write("[Match]\nName=host0\n\n[Network]\nAddress=%s/30\nLinkLocalAddressing=no\n" % address(index))
    with open(os.path.join(root, "etc/systemd/network/10-ul0.network"), "w") as handle:
        handle.write("[Match]\nName=ul0\n\n[Network]\nAddress=%s.%d/24\nLinkLocalAddressing=no\n" % (UNDERLAY_NET, index))
    # nic0 is left to the topology (networkd must not configure or hold it)
    with open(os.path.join(root, "etc/systemd/network/10-nic0.network"), "w") as handle:
        handle.write("[Match]\nName=nic0\n\n[Link]\nUnmanaged=yes\n")
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
  # shellcheck disable=SC2086  # INIT_ARGS: words for the container's systemd, or none
  systemd-nspawn -b -q -D "$ROOT" --machine="$NAME" --register=no --keep-unit --network-veth \
      --network-veth-extra="vu-$NAME:ul0" --network-veth-extra="vn-$NAME:nic0" --bind=/dev/net/tun \
      --bind-ro="$REPO:$REPO_MOUNT" -- $INIT_ARGS >>"$LOG" 2>&1 &
  child=$!
  echo $child >"$DIR/nspawn.pid"
  # nspawn makes the links before the container boots; on a loaded machine that can take a while
  for link in "ve-$NAME" "vu-$NAME" "vn-$NAME"; do
    for _ in $(seq 1 600); do
      ip link show "$link" >/dev/null 2>&1 && break
      sleep 0.05
    done
  done
  ip addr replace "$HOSTADDR/30" dev "ve-$NAME" && ip link set "ve-$NAME" up
  for port in "vu-$NAME" "vn-$NAME"; do
    ip link set "$port" master "$BRIDGE" && ip link set "$port" up || echo "cannot put $port on $BRIDGE" >>"$LOG"
  done
  wait $child
  status=$?
  echo "nspawn exited with $status" >>"$LOG"
  [ "$status" -eq 133 ] && [ ! -e "$DIR/stop" ] || break
done
rm -f "$DIR/nspawn.pid"
"""


def init_args() -> List[str]:
    """What the container's systemd is told. On a host without the unified cgroup hierarchy (these
    machines mount cgroup v1), nspawn gives the container v1, which systemd >= 256 (Debian 13's 257)
    refuses unless asked to boot anyway; in a container systemd reads its command line as the
    kernel's, and older ones ignore the setting."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return []
    return ["SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1"]


def ensure_underlay() -> None:
    """The hosts' shared segment: a bridge with no address (no IPv6 link-local either), so this
    machine is not on it. Made by create.yml once, before the hosts boot in parallel (``up`` makes
    it too, for a host booted by hand); removed by ``underlay-remove`` once every host is down."""
    if not os.path.exists(os.path.join("/sys/class/net", UNDERLAY_BRIDGE)):
        made = subprocess.run(["ip", "link", "add", UNDERLAY_BRIDGE, "type", "bridge"], check=False)
        if made.returncode != 0 and not os.path.exists(os.path.join("/sys/class/net", UNDERLAY_BRIDGE)):
            sys.exit("cannot make the bridge %s" % UNDERLAY_BRIDGE)
    subprocess.run(["ip", "link", "set", UNDERLAY_BRIDGE, "addrgenmode", "none"], check=True)
    subprocess.run(["ip", "link", "set", UNDERLAY_BRIDGE, "up"], check=True)


def remove_underlay() -> None:
    """The bridge, when no host's link is a port of it any more."""
    ports = os.path.join("/sys/class/net", UNDERLAY_BRIDGE, "brif")
    if not os.path.isdir(ports):
        return
    if os.listdir(ports):
        sys.exit("%s still has ports (%s): a host is up" % (UNDERLAY_BRIDGE, " ".join(sorted(os.listdir(ports)))))
    subprocess.run(["ip", "link", "delete", UNDERLAY_BRIDGE], check=True)


def boot(name: str, index: int, root: str, suite: str) -> None:
    ensure_underlay()
    directory = _instance_dir(name)
    cgroups = instance_cgroups(name)
    with open(os.path.join(directory, "cgroups"), "w") as handle:
        handle.write("\n".join(cgroups) + "\n")
    env = dict(os.environ, ROOT=root, NAME=name, DIR=directory, LOG=os.path.join(directory, "console.log"),
               HOSTADDR=address(index, inside=False), CGROUPS=" ".join(cgroups),
               REPO=repo_dir(suite), REPO_MOUNT=REPO_MOUNT, INIT_ARGS=" ".join(init_args()), BRIDGE=UNDERLAY_BRIDGE)
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
    for link in ("ve-", "vu-", "vn-"):
        subprocess.run(["ip", "link", "delete", link + name], stderr=subprocess.DEVNULL, check=False)
    try:
        with open(os.path.join(directory, "cgroups")) as handle:
            remove_cgroups(handle.read().split())
    except OSError:
        pass
    remove_tree(directory)


def _image(words: List[str]) -> Tuple[str, str]:
    if len(words) != 2 or words[0] not in SUITES or words[1] not in IMAGES:
        sys.exit("SUITE IMAGE must be one of %s and one of %s, not %s" % (SUITES, IMAGES, " ".join(words)))
    return words[0], words[1]


def main(argv: List[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    command = argv[0]
    if command == "rootfs":
        for image in argv[2:] or ["bare"]:
            build_rootfs(*_image([argv[1] if len(argv) > 1 else "", image]))
    elif command == "up":
        name, index, key = argv[1], int(argv[2]), argv[3]
        suite, image = _image(argv[4:6])
        build_rootfs(suite, image)
        down(name)
        root = prepare_instance(name, index, key, suite, image)
        boot(name, index, root, suite)
        wait_for_ssh(address(index))
    elif command == "down":
        down(argv[1])
    elif command == "underlay":
        ensure_underlay()
    elif command == "underlay-remove":
        remove_underlay()
    elif command == "address":
        print(address(int(argv[1])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
