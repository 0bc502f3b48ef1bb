# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WireGuard links: made in the underlay namespace (where their UDP socket stays) and living in
``netns``, by the kernel's module where it has one, else by wireguard-go; configured the same way
through either (kernel/wireguard.py). The private key is read from a root-only file when planning and
again when applying; results, diffs and errors say only whether it changes."""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import ipaddress
import os
from typing import Any, Dict, List, Optional, Tuple

from ..errors import NetnsError
from ..kernel import wireguard as wg
from ..kernel.session import Kernel
from ..kernel.transport import ns_label, refusal
from ..model import Change, Kind, Params, Pending, Undo, params_of, undo_nothing
from ..system import trusted_files
from .link import Link, delete_link, forget_indexes, index_of, link_key, links, plan_link_attributes
from .virtual_link import VirtualLinkParams

KEYS = {"type", "name", "netns", "underlay_netns", "private_key_file", "listen_port", "peers", "mtu", "up"}
PEER_KEYS = {"public_key", "endpoint", "allowed_ips", "persistent_keepalive"}
KERNEL_KINDS = {"kernel": "wireguard", "userspace": "tun"}  # the link kind each backend's device has


@dataclasses.dataclass(frozen=True)
class WireguardSpec:
    netns: Optional[str]
    name: str
    private_key_file: str = ""
    underlay_netns: Optional[str] = None
    listen_port: Optional[int] = None  # None: whatever port the device has
    peers: Tuple[wg.Peer, ...] = ()
    mtu: Optional[int] = None
    up: Optional[bool] = True
    state: str = "present"
    field: str = dataclasses.field(default="link", compare=False)


# -- the format ------------------------------------------------------------------------------------
def _fail(path: str, message: str) -> NetnsError:
    return NetnsError(message, obj=path)


def parse_wireguard(item: Dict[str, Any], where: str) -> Dict[str, Any]:
    """The wireguard keys of a link entry, normalised (the common ones are spec.py's)."""
    key_file = item.get("private_key_file")
    if not isinstance(key_file, str) or not os.path.isabs(key_file) or "\0" in key_file:
        raise _fail(where + ".private_key_file", "must be the absolute path of a file holding the private key "
                    "(as `wg genkey` writes it)")
    port = item.get("listen_port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        raise _fail(where + ".listen_port", "must be an integer from 1 to 65535, not %r" % (port,))
    raw_peers = [] if item.get("peers") is None else item["peers"]
    if not isinstance(raw_peers, list):
        raise _fail(where + ".peers", "must be a list, not %s" % type(raw_peers).__name__)
    peers = [_parse_peer(raw, "%s.peers[%d]" % (where, i)) for i, raw in enumerate(raw_peers)]
    seen: Dict[str, int] = {}
    for i, peer in enumerate(peers):
        if peer["public_key"] in seen:
            raise _fail("%s.peers[%d].public_key" % (where, i), "the same peer as peers[%d]" % seen[peer["public_key"]])
        seen[peer["public_key"]] = i
    return {"private_key_file": os.path.normpath(key_file), "listen_port": port, "peers": peers}


def _parse_peer(raw: Any, where: str) -> Dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(where, "must be a mapping, not %s" % type(raw).__name__)
    unknown = sorted(set(map(str, raw)) - PEER_KEYS)
    if unknown:
        raise _fail(where, "unknown key(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(sorted(PEER_KEYS))))
    public_key = raw.get("public_key")
    if not isinstance(public_key, str) or wg.decode_key(public_key) is None:
        raise _fail(where + ".public_key", "must be a WireGuard public key (base64 of 32 bytes, as `wg pubkey` writes it)")
    allowed = [] if raw.get("allowed_ips") is None else raw["allowed_ips"]
    if not isinstance(allowed, list):
        raise _fail(where + ".allowed_ips", "must be a list of networks, not %s" % type(allowed).__name__)
    keepalive = raw.get("persistent_keepalive", 0)
    if isinstance(keepalive, bool) or not isinstance(keepalive, int) or not 0 <= keepalive <= 65535:
        raise _fail(where + ".persistent_keepalive", "must be seconds from 0 (off) to 65535, not %r" % (keepalive,))
    return {"public_key": wg.encode_key(wg.decode_key(public_key) or b""),
            "endpoint": None if raw.get("endpoint") is None else parse_endpoint(raw["endpoint"], where + ".endpoint"),
            "allowed_ips": sorted({_network(value, "%s.allowed_ips[%d]" % (where, i)) for i, value in enumerate(allowed)}),
            "persistent_keepalive": keepalive}


def _network(value: Any, where: str) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=True)) if isinstance(value, str) else _bad_network(where, value)
    except ValueError:
        return _bad_network(where, value)


def _bad_network(where: str, value: Any) -> str:
    raise _fail(where, "must be a network such as 10.0.0.0/24 or fd00::/64 (no host bits), not %r" % (value,))


def parse_endpoint(value: Any, where: str) -> str:
    """IP:PORT or [IPv6]:PORT, as the device reports it (names are not resolved: say the address)."""
    host, _sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    try:
        address = ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        number = int(port, 10)
    except ValueError:
        address, number = None, 0
    if address is None or not 1 <= number <= 65535 or (address.version == 6 and not host.startswith("[")):
        raise _fail(where, "must be IP:PORT or [IPv6]:PORT with a port from 1 to 65535, not %r" % (value,))
    return ("[%s]:%d" if address.version == 6 else "%s:%d") % (address, number)


def wireguard_spec(item: Dict[str, Any]) -> WireguardSpec:
    """From a validated topology link entry."""
    return WireguardSpec(
        netns=item.get("netns"), name=item["name"], private_key_file=item["private_key_file"],
        underlay_netns=item.get("underlay_netns"), listen_port=item.get("listen_port"),
        peers=tuple(wg.Peer(p["public_key"], p["endpoint"], frozenset(p["allowed_ips"]), p["persistent_keepalive"])
                    for p in item.get("peers") or ()),
        mtu=item.get("mtu"), up=item.get("up", True), field=item.get("path", "link"))


def read_private_key(path: str, field: str) -> bytes:
    """The key of a root-only file; every error names the file (and the spec's field), never the content."""
    try:
        data = trusted_files.read_secret(path, limit=4096)
    except NetnsError as exc:
        raise _fail(field, "%s: %s" % (path, exc.message)) from None
    if data is None:
        raise _fail(field, "%s does not exist" % path)
    try:
        key = wg.decode_key(data.decode("ascii"))
    except UnicodeDecodeError:
        key = None
    if key is None:
        raise _fail(field, "%s holds no WireGuard private key (base64 of 32 bytes, as `wg genkey` writes it)" % path)
    return key


# -- planning -------------------------------------------------------------------------------------
def plan_wireguard(kernel: Kernel, spec: WireguardSpec, pending: Pending) -> List[Change]:
    key = link_key(spec.netns, spec.name)
    if spec.state == "absent":
        return plan_wireguard_absent(kernel, spec.netns, spec.name)
    for ns in (spec.netns, spec.underlay_netns):
        if not kernel.exists(ns) and not pending.has_namespace(ns):
            raise NetnsError("namespace %s does not exist" % ns, obj="link " + key)
    private_key = read_private_key(spec.private_key_file, spec.field + ".private_key_file")
    current = links(kernel, spec.netns).get(spec.name)
    pending.note_link(spec.netns, spec.name, spec.mtu, spec.up)
    changes: List[Change] = []
    if current is None:
        backend = wg.creation_backend()
        after = {"type": "wireguard", "underlay": ns_label(spec.underlay_netns), "backend": backend}
        if backend == "userspace" and wg.wireguard_go() is None:
            if not pending.checking:
                raise _fail(spec.field, "the kernel has no wireguard module and wireguard-go is not installed")
            after["wireguard_go"] = "not installed (yet)"
        changes.append(Change("link", "create", key, None, after,
                              params=WireguardCreate("wireguard", spec.netns, spec.name, mtu=spec.mtu,
                                                     underlay=spec.underlay_netns, backend=backend)))
        pending.links.add((spec.netns, spec.name))
        device = None
    else:
        backend = backend_of(current, spec.netns, spec.name)
        device = read_device(kernel, backend, spec.netns, spec.name)
    changes += plan_settings(spec, private_key, device, backend)
    return changes + plan_link_attributes(spec.netns, spec.name, current, spec.mtu, None, spec.up)


def backend_of(current: Link, netns: Optional[str], name: str) -> str:
    """Which backend serves the existing link, or NetnsError when it is no WireGuard device."""
    if current.kind == "wireguard":
        return "kernel"
    if current.kind == "tun" and os.path.exists(wg.uapi_socket(netns, name)):
        return "userspace"
    raise NetnsError("exists as a %s link, not a wireguard device this collection made; refusing to change it"
                     % (current.kind or "physical/loopback"), obj="link " + link_key(netns, name))


def read_device(kernel: Kernel, backend: str, netns: Optional[str], name: str) -> wg.Device:
    obj = "link " + link_key(netns, name)
    if backend == "kernel":
        return wg.read_genetlink(kernel, netns, name, obj)
    return wg.read_uapi(wg.uapi_socket(netns, name), obj)


def plan_settings(spec: WireguardSpec, private_key: bytes, device: Optional[wg.Device], backend: str) -> List[Change]:
    """The configuration change, if any: the key (compared, never shown), the port, peers by public key."""
    have = device if device is not None else wg.Device(None, 0, {})
    before: Dict[str, Any] = {}
    after: Dict[str, Any] = {}
    key_changes = have.private_key is None or not hmac.compare_digest(have.private_key, private_key)
    if key_changes:
        before["private_key"] = None if have.private_key is None else "(another key)"
        after["private_key"] = "(from %s)" % spec.private_key_file
    if spec.listen_port is not None and spec.listen_port != have.listen_port:
        before["listen_port"], after["listen_port"] = have.listen_port or None, spec.listen_port
    wanted = [peer for peer in spec.peers if not _same_peer(peer, have.peers.get(peer.public_key))]
    removed = tuple(sorted(set(have.peers) - {peer.public_key for peer in spec.peers}))
    for peer in wanted:
        old = have.peers.get(peer.public_key)
        before.setdefault("peers", {})[peer.public_key] = None if old is None else _shown(old)
        after.setdefault("peers", {})[peer.public_key] = _shown(peer)
    for public_key in removed:
        before.setdefault("peers", {})[public_key] = _shown(have.peers[public_key])
        after.setdefault("peers", {})[public_key] = None
    if not after and not before:
        return []
    key = link_key(spec.netns, spec.name)
    return [Change("link", "update", key, before if device is not None else None, after,
                   params=WireguardSettings(spec.netns, spec.name, backend, spec.private_key_file if key_changes else None,
                                            after.get("listen_port"), tuple(wanted), removed, device is None))]


def _same_peer(peer: wg.Peer, current: Optional[wg.Peer]) -> bool:
    return (current is not None and peer.allowed_ips == current.allowed_ips
            and peer.persistent_keepalive == current.persistent_keepalive
            and (peer.endpoint is None or peer.endpoint == current.endpoint))


def _shown(peer: wg.Peer) -> Dict[str, Any]:
    return {key: value for key, value in peer.as_dict().items() if key != "public_key"}


def plan_wireguard_absent(kernel: Kernel, netns: Optional[str], name: str) -> List[Change]:
    """The deletion of the WireGuard link (wireguard-go exits when its TUN goes)."""
    current = links(kernel, netns).get(name) if kernel.exists(netns) else None
    if current is None:
        return []
    backend_of(current, netns, name)
    return [Change("link", "delete", link_key(netns, name), current.as_dict(), None,
                   params=VirtualLinkParams("wireguard", netns, name))]


def wireguard_report(kernel: Kernel, netns: Optional[str], link: Link) -> Dict[str, Any]:
    """netns_info's ``wireguard`` of a WireGuard link (backend, port, peers; no key), {} for another link."""
    try:
        backend = backend_of(link, netns, link.name)
        device = read_device(kernel, backend, netns, link.name)
    except NetnsError:
        return {}
    report: Dict[str, Any] = {"backend": backend, "listen_port": device.listen_port,
                              "peers": [device.peers[key].as_dict() for key in sorted(device.peers)]}
    if backend == "userspace":
        report["uapi_name"] = wg.uapi_name(netns, link.name)  # what `wg show` knows it by
    return {"type": "wireguard", "wireguard": report}


# -- applying and undoing -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WireguardCreate(VirtualLinkParams):
    """A VirtualLinkParams, so that the ownership record claims the link like any other it creates."""

    underlay: Optional[str] = None
    backend: str = "userspace"


@dataclasses.dataclass(frozen=True)
class WireguardSettings(Params):
    ns: Optional[str]
    name: str
    backend: str
    key_file: Optional[str]  # set the key read from this file; None: it stays
    listen_port: Optional[int]
    peers: Tuple[wg.Peer, ...]  # set whole
    removed: Tuple[str, ...]  # public keys
    new_link: bool  # made by the same plan: its deletion undoes this


class WireguardKind(Kind):
    name = "link"
    params = (WireguardCreate, WireguardSettings)
    spec = WireguardSpec
    read = staticmethod(links)
    plan = staticmethod(plan_wireguard)

    def apply(self, kernel: Kernel, change: Change) -> None:
        if isinstance(change.params, WireguardCreate):
            _create(kernel, change.key, change.params)
            return
        params = params_of(change, WireguardSettings)
        key = None if params.key_file is None else read_private_key(params.key_file, "link %s" % change.key)
        configure(kernel, params.backend, params.ns, params.name,
                  wg.Settings(key, params.listen_port, params.peers, params.removed))

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        if isinstance(change.params, WireguardCreate):
            created = change.params

            def delete(kernel_: Kernel) -> None:
                delete_link(kernel_, created.ns, created.name, None, "delete", "link " + change.key)
            return delete
        params = params_of(change, WireguardSettings)
        if params.new_link:
            return undo_nothing  # the link's deletion undoes it
        old = read_device(kernel, params.backend, params.ns, params.name)
        restore = wg.Settings(old.private_key if params.key_file else None,
                              old.listen_port if params.listen_port is not None else None,
                              tuple(old.peers[k] for k in sorted(old.peers)),
                              tuple(p.public_key for p in params.peers if p.public_key not in old.peers))
        return lambda kernel_: configure(kernel_, params.backend, params.ns, params.name, restore)


def configure(kernel: Kernel, backend: str, netns: Optional[str], name: str, settings: wg.Settings) -> None:
    obj = "link " + link_key(netns, name)
    if backend == "kernel":
        wg.configure_genetlink(kernel, netns, name, settings, obj)
    else:
        wg.configure_uapi(wg.uapi_socket(netns, name), settings, obj)


def _create(kernel: Kernel, key: str, params: WireguardCreate) -> None:
    obj = "link " + key
    if params.backend == "kernel":
        attrs: Dict[str, Any] = {"ifname": params.name, "kind": "wireguard"}
        if params.mtu:
            attrs["mtu"] = params.mtu
        if params.underlay != params.ns:
            attrs["net_ns_fd"] = kernel.fd(params.ns)
        with refusal("create wireguard", obj):
            kernel.netlink.requests(params.underlay).link("add", **attrs)
    else:
        _create_userspace(kernel, obj, params)
    kernel.cache.invalidate(params.ns, "links")


def _create_userspace(kernel: Kernel, obj: str, params: WireguardCreate) -> None:
    """wireguard-go under a name of its own in the underlay, then its TUN moved and renamed in one
    request (the daemon follows: it holds the TUN by descriptor and its socket by path)."""
    handle = wg.uapi_name(params.ns, params.name)
    if handle in links(kernel, params.underlay):
        raise NetnsError("the %s has a link %s already (a wireguard-go of this link's left over?)"
                         % (ns_label(params.underlay), handle), obj=obj)
    wg.start_wireguard_go(kernel, params.underlay, handle, obj)
    try:
        wg.wait_until_served(handle, obj)
        attrs: Dict[str, Any] = {"index": index_of(kernel, params.underlay, handle), "ifname": params.name}
        if params.underlay != params.ns:
            attrs["net_ns_fd"] = kernel.fd(params.ns)
        if params.mtu:
            attrs["mtu"] = params.mtu
        with refusal("move wireguard-go's device", obj):
            kernel.netlink.requests(params.underlay).link("set", **attrs)
    except NetnsError:
        with contextlib.suppress(NetnsError):  # its daemon ends with it; the first error is the one to tell
            delete_link(kernel, params.underlay, handle, None, "delete", obj)
        raise
    finally:
        forget_indexes(kernel)
        kernel.cache.invalidate(params.underlay, "links")


WIREGUARD = WireguardKind()
