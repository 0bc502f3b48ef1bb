# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named namespaces with their per-namespace sysctls, resolv.conf and loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import time
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import ns_label
from ..model import Change, Kind, Params, Undo, params_of, undo_nothing
from ..system import netns_mounts, procfs, thread_netns, trusted_files
from ..validation import (
    LOOPBACK,
    check_netns_name,
    check_sysctl_key,
    check_sysctl_value,
    normalise_sysctl_value,
    parse_address,
    per_link_sysctl,
    sysctl_path,
    with_link,
)
from .link import forget_indexes, links, plan_link_attributes

RESOLV_MARKER = "# Managed by linuxnet.netns"
# The loopback option (of a topology's namespace and of the netns module): whether lo is set up.
LOOPBACK_STATES = {"up": True, "down": False, "unmanaged": None}
SETTLE_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class NamespaceSpec:
    name: str
    state: str = "present"
    sysctls: Tuple[Tuple[str, str], ...] = ()
    nameservers: Optional[Tuple[str, ...]] = None  # None: leave resolv.conf alone; (): remove ours
    lo_up: Optional[bool] = True
    path: str = dataclasses.field(default="", compare=False)  # where the spec is ("namespaces[0]"; "": the task)

    def field(self, what: str) -> str:
        return "%s.%s" % (self.path, what) if self.path else what


def namespace_spec(
    name: str,
    state: str = "present",
    sysctls: Optional[Dict[str, Any]] = None,
    nameservers: Optional[List[str]] = None,
    lo_up: Optional[bool] = True,
    path: str = "",
) -> NamespaceSpec:
    """Validate raw input into a spec; raises NetnsError naming the field (under ``path``)."""
    at = NamespaceSpec(name, path=path).field
    check_netns_name(name, at("name"))
    if state not in ("present", "absent"):
        raise NetnsError("state must be 'present' or 'absent', not %r" % (state,), obj=at("state"))
    if sysctls is not None and not isinstance(sysctls, dict):
        raise NetnsError("must be a mapping of net.* keys to values", obj=at("sysctls"))
    pairs = []
    for key, value in sorted((sysctls or {}).items()):
        check_sysctl_key(key, at("sysctls.%s" % key))
        pairs.append((key, check_sysctl_value(value, at("sysctls.%s" % key))))
    servers = None
    if nameservers is not None:
        servers = tuple(str(parse_address(s, at("nameservers[%d]" % i))) for i, s in enumerate(nameservers))
    return NamespaceSpec(name, state, tuple(pairs), servers, lo_up, path)


def split_sysctls(spec: NamespaceSpec, links: FrozenSet[str]) -> Tuple[NamespaceSpec, NamespaceSpec]:
    """``spec`` without the per-interface sysctls of ``links``, and those alone: a plan sets them once
    the links are there."""
    later = tuple((key, value) for key, value in spec.sysctls if per_link_sysctl(key) in links)
    now = tuple(pair for pair in spec.sysctls if pair not in later)
    return (dataclasses.replace(spec, sysctls=now),
            NamespaceSpec(spec.name, sysctls=later, nameservers=None, lo_up=None, path=spec.path))


# -- reading -------------------------------------------------------------------------------
def read_sysctls(kernel: Kernel, ns: Optional[str], keys: List[str]) -> Dict[str, Optional[str]]:
    """Current values inside ``ns`` (None where the key does not exist there)."""
    values: Dict[str, Optional[str]] = {}
    if not kernel.exists(ns):
        return {key: None for key in keys}
    with kernel.entered(ns):
        for key in keys:
            try:
                with open(sysctl_path(key)) as handle:
                    values[key] = normalise_sysctl_value(handle.read())
            except OSError:
                values[key] = None
    return values


def resolv_conf_path(name: str) -> str:
    return os.path.join(netns_mounts.NETNS_ETC_DIR, check_netns_name(name), "resolv.conf")


def read_nameservers(name: str) -> Tuple[Optional[List[str]], bool]:
    """(nameservers in /etc/netns/NAME/resolv.conf or None if no file, whether we wrote it).
    NetnsError naming it when it, or /etc/netns/NAME, is a symlink, or it is not a regular file."""
    text = trusted_files.read_regular_file(resolv_conf_path(name))
    if text is None:
        return None, False
    servers = [line.split()[1] for line in text.splitlines()
               if line.startswith("nameserver") and len(line.split()) > 1]
    return servers, text.startswith(RESOLV_MARKER)


def resolv_conf_text(servers: Tuple[str, ...]) -> str:
    return RESOLV_MARKER + "\n" + "".join("nameserver %s\n" % s for s in servers)


def namespace_facts(kernel: Kernel, name: str, pids_by_inode: Optional[Dict[int, List[int]]] = None) -> Dict[str, Any]:
    """What a caller reports about a namespace: identity, path, pids inside."""
    if not netns_mounts.namespace_exists(name):
        return {"name": name, "exists": False}
    inode = netns_mounts.namespace_inode(name)
    pids = (pids_by_inode if pids_by_inode is not None else procfs.pids_by_netns_inode()).get(inode, [])
    return {"name": name, "exists": True, "id": inode, "path": netns_mounts.netns_path(name), "pids": pids}


# -- planning ------------------------------------------------------------------------------
def plan_namespace(kernel: Kernel, spec: NamespaceSpec, try_values: bool = True) -> List[Change]:
    """``try_values``: try the sysctl values it sets in a throw-away namespace now (else the caller
    does, with ``try_sysctls``, for a whole plan at once)."""
    if spec.state == "absent":
        return _plan_absent(kernel, spec)
    changes: List[Change] = []
    exists = kernel.exists(spec.name)
    if not exists:
        changes.append(Change("netns", "create", spec.name, None, {"name": spec.name},
                              params=NamespaceParams(spec.name)))
    changes += plan_sysctls(kernel, spec, try_values=try_values)
    changes += _plan_dns(spec)
    if spec.lo_up is not None:
        current_lo = links(kernel, spec.name).get("lo") if exists else None
        changes += plan_link_attributes(spec.name, "lo", current_lo, up=spec.lo_up)
    return changes


def plan_sysctls(kernel: Kernel, spec: NamespaceSpec, links_to_come: FrozenSet[str] = frozenset(),
                 try_values: bool = True) -> List[Change]:
    """The sysctls of ``spec`` that differ. ``links_to_come``: links the plan creates in (or moves
    to) the namespace before these changes, whose per-interface keys cannot be read yet."""
    if not spec.sysctls:
        return []
    exists = kernel.exists(spec.name)
    current = read_sysctls(kernel, spec.name, [key for key, _value in spec.sysctls]) if exists else {}
    present: FrozenSet[str] = frozenset()
    if exists and any(per_link_sysctl(key) for key, _value in spec.sysctls):
        present = frozenset(links(kernel, spec.name))
    changes = []
    for key, wanted in spec.sysctls:
        have, link = current.get(key), per_link_sysctl(key)
        coming = link in links_to_come and link not in present
        if exists and have is None and not coming:
            raise NetnsError("no such sysctl in %s" % ns_label(spec.name), obj=spec.field("sysctls." + key))
        if have != wanted:
            # A link of the namespace has the same keys as any other, lo among them, which a
            # throw-away namespace has too (it has no neigh.default: the default twin is no probe).
            probe = with_link(key, LOOPBACK) if link in present | links_to_come else key
            changes.append(Change("sysctl", "update", "%s in %s" % (key, ns_label(spec.name)),
                                  {"value": have}, {"value": wanted},
                                  params=SysctlParams(spec.name, key, wanted, probe, spec.field("sysctls." + key))))
    if try_values:
        try_sysctls(changes)
    return changes


def try_sysctls(changes: List[Change]) -> None:
    """Set each sysctl of ``changes`` in one throw-away namespace, in plan order, and read it back:
    a key a new namespace lacks, a value the kernel refuses or keeps otherwise fails here, naming
    its field, before anything changes (the host's namespaces are not touched)."""
    trials = [change.params for change in changes if isinstance(change.params, SysctlParams)]
    if not trials:
        return
    with thread_netns.scratch_namespace():
        problems = [(params, _try_sysctl(params.probe, params.value)) for params in trials]
    for params, problem in problems:
        if problem is not None:
            message, code = problem
            raise NetnsError(message, obj=params.field, errno=code)


def _try_sysctl(key: str, value: str) -> Optional[Tuple[str, Optional[int]]]:
    """(why the kernel will not take ``value`` for ``key``, errno), or None when it does."""
    try:
        fd = os.open(sysctl_path(key), os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return "no such sysctl in a new namespace", errno.ENOENT
    except OSError as exc:
        return "the kernel does not let it be set", exc.errno
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        return "the kernel refuses the value %r" % value, exc.errno
    finally:
        os.close(fd)
    try:
        with open(sysctl_path(key)) as handle:
            kept = normalise_sysctl_value(handle.read())
    except OSError as exc:
        return "the kernel does not let it be read back", exc.errno
    if kept != value:
        return "the kernel keeps %r when given %r" % (kept, value), None
    return None


def _plan_dns(spec: NamespaceSpec) -> List[Change]:
    if spec.nameservers is None:
        return []
    current, ours = read_nameservers(spec.name)
    key = "resolv.conf of %s" % ns_label(spec.name)
    path = resolv_conf_path(spec.name)
    if not spec.nameservers:
        if current is not None and ours:
            _check_dns_removable(spec.name)
            return [Change("dns", "delete", key, {"nameservers": current}, None, params=ResolvConfParams(path))]
        return []
    if current == list(spec.nameservers) and ours:
        return []
    _check_dns_writable(spec.name)
    return [Change("dns", "create" if current is None else "update", key,
                   None if current is None else {"nameservers": current},
                   {"nameservers": list(spec.nameservers)},
                   params=ResolvConfParams(path, resolv_conf_text(spec.nameservers)))]


def _plan_absent(kernel: Kernel, spec: NamespaceSpec) -> List[Change]:
    changes: List[Change] = []
    current_dns, ours = read_nameservers(spec.name)
    if current_dns is not None and ours:
        _check_dns_removable(spec.name)
        changes.append(Change("dns", "delete", "resolv.conf of %s" % ns_label(spec.name),
                              {"nameservers": current_dns}, None,
                              params=ResolvConfParams(resolv_conf_path(spec.name))))
    if kernel.exists(spec.name):
        changes.append(Change("netns", "delete", spec.name, {"name": spec.name}, None,
                              params=NamespaceParams(spec.name)))
    return changes


def _check_dns_writable(name: str) -> None:
    """Refuse when planning, before any change, what writing resolv.conf would: /etc/netns or
    /etc/netns/NAME a symlink, not a directory, or a directory someone other than root can write."""
    trusted_files.check_directory(netns_mounts.NETNS_ETC_DIR)
    trusted_files.check_directory(os.path.dirname(resolv_conf_path(name)))


def _check_dns_removable(name: str) -> None:
    _check_dns_writable(name)
    trusted_files.check_removable(resolv_conf_path(name))


def namespace_report(kernel: Kernel, name: str, sysctl_keys: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The netns module's return value."""
    report = namespace_facts(kernel, name)
    if report["exists"]:
        report["sysctls"] = read_sysctls(kernel, name, sorted(sysctl_keys or {}))
    report["nameservers"] = read_nameservers(name)[0]
    return report


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NamespaceParams(Params):
    name: str
    # A deletion planned as the topology's own: the identity (nsfs inode) it was planned on.
    identity: Optional[List[Any]] = None


@dataclasses.dataclass(frozen=True)
class SysctlParams(Params):
    ns: Optional[str]
    key: str
    value: str
    probe: str  # the key to try the value on in a throw-away namespace
    field: str  # where the input declared it


@dataclasses.dataclass(frozen=True)
class ResolvConfParams(Params):
    path: str
    content: Optional[str] = None  # None: delete


class NamespaceKind(Kind):
    name = "netns"
    params = (NamespaceParams,)
    spec = NamespaceSpec
    plan = staticmethod(plan_namespace)
    report = staticmethod(namespace_report)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = params_of(change, NamespaceParams)
        if change.action == "create":
            netns_mounts.create_namespace(params.name)
            kernel.forget_namespace(params.name)
            kernel.created.add(params.name)
        else:
            _delete_namespace(kernel, params)

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, NamespaceParams)
        if change.action == "create":
            return self.replay(Change("netns", "delete", change.key, params=NamespaceParams(params.name)))
        return None  # its processes, links and addresses are gone with it


def _delete_namespace(kernel: Kernel, params: NamespaceParams) -> None:
    name = params.name
    if params.identity is not None:  # planned as ours: still the same namespace under that name?
        kernel.forget_namespace(name)
        if not kernel.exists(name) or kernel.identity(name) != params.identity:
            raise NetnsError("is no longer the namespace this topology created (deleted and made again by "
                             "someone else since it was planned); left alone", obj="netns %s" % name)
    outside_peers = _veth_peers_outside(kernel, name)
    # One /proc scan per run, not per deletion (a process entering a namespace that this run is
    # deleting, under our lock, is not worth a scan of every process for every namespace).
    holders = kernel.cache.get(None, "holders", lambda _ns: procfs.pids_by_netns_inode()).get(
        netns_mounts.namespace_inode(name), [])
    netns_mounts.delete_namespace(name)
    kernel.forget_namespace(name)  # closes what we held of it too: nothing of ours keeps it alive
    kernel.created.discard(name)
    forget_indexes(kernel)
    if outside_peers and not holders:
        kernel.after_batch(lambda: _wait_links_gone(kernel, outside_peers, name))


def _veth_peers_outside(kernel: Kernel, name: str) -> List[Tuple[Optional[str], int]]:
    """(namespace, ifindex) of the far ends of veths in ``name`` that live in the root namespace
    or another named namespace: they vanish asynchronously once ``name`` is freed."""
    peers = []
    nsid_to_ns: Dict[int, Optional[str]] = {}
    inner = [l for l in links(kernel, name).values() if l.kind == "veth" and l.peer_nsid is not None]
    if not inner:
        return []
    candidates: List[Optional[str]] = [None] + sorted(kernel.namespaces() - {name})
    for link in inner:
        if link.peer_nsid not in nsid_to_ns:
            for candidate in candidates:
                if _nsid_if_there(kernel, name, candidate) == link.peer_nsid:
                    nsid_to_ns[link.peer_nsid] = candidate
                    break
            else:
                continue
        peers.append((nsid_to_ns[link.peer_nsid], link.peer_index))
    return peers


def _nsid_if_there(kernel: Kernel, name: str, candidate: Optional[str]) -> Optional[int]:
    """The id ``name`` uses for ``candidate``; None for a namespace someone deleted meanwhile."""
    try:
        return kernel.nsid(name, candidate)
    except NetnsError as exc:
        if candidate is None or exc.errno != errno.ENOENT:
            raise
        return None


def _wait_links_gone(kernel: Kernel, peers: List[Tuple[Optional[str], int]], name: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    pending = list(peers)
    delay = 0.002
    while pending:
        still = []
        for ns, index in pending:
            if not kernel.exists(ns):
                continue
            try:
                kernel.netlink.ipr(ns).link("get", index=index)
                still.append((ns, index))
            except Exception as exc:  # ENODEV: gone
                if getattr(exc, "code", None) not in (errno.ENODEV, errno.ENOENT):
                    raise
        pending = still
        if not pending:
            break
        if time.monotonic() > deadline:
            raise NetnsError("links of the deleted namespace did not vanish within %ds" % SETTLE_TIMEOUT,
                             obj="netns %s" % name)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    for ns in {ns for ns, _index in peers}:
        kernel.cache.invalidate(ns, "links")


class SysctlKind(Kind):
    name = "sysctl"
    params = (SysctlParams,)
    read = staticmethod(read_sysctls)
    plan = staticmethod(plan_sysctls)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = params_of(change, SysctlParams)
        with kernel.entered(params.ns):
            try:
                with open(sysctl_path(params.key), "w") as handle:
                    handle.write(params.value)
            except OSError as exc:
                raise NetnsError("cannot set to %r" % params.value, obj="sysctl " + change.key,
                                 errno=exc.errno) from None

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, SysctlParams)
        old = (change.before or {}).get("value")
        if old is None:  # in a namespace this run creates: undoing the creation covers it
            return undo_nothing
        return self.replay(Change("sysctl", "update", change.key, params=dataclasses.replace(params, value=old)))


class ResolvConfKind(Kind):
    name = "dns"
    params = (ResolvConfParams,)
    plan = staticmethod(_plan_dns)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = params_of(change, ResolvConfParams)
        if params.content is None:
            trusted_files.remove_file(params.path)
            with contextlib.suppress(OSError):  # rmdir never follows a symlink
                os.rmdir(os.path.dirname(params.path))  # fails while the directory holds other files of the user's
            return
        # As ip netns does: /etc/netns and /etc/netns/NAME are 0755, whatever the umask.
        trusted_files.ensure_directory(netns_mounts.NETNS_ETC_DIR, 0o755)
        trusted_files.write_file_atomically(params.path, params.content, 0o644, directory_mode=0o755)

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, ResolvConfParams)
        old_text = trusted_files.read_regular_file(params.path)  # never a FIFO opened, nor a symlink followed
        action = "delete" if old_text is None else "update"
        return self.replay(Change("dns", action, change.key, params=ResolvConfParams(params.path, old_text)))


NAMESPACE = NamespaceKind()
SYSCTL = SysctlKind()
RESOLV_CONF = ResolvConfKind()
