# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WireGuard devices, two ways: the kernel's (a ``wireguard`` link, configured over generic netlink)
and wireguard-go's (a TUN device its daemon serves, configured over the cross-platform UAPI socket).

Both are made in the underlay namespace, where their UDP socket stays, and then live in the link's
namespace. One model of a device's configuration serves both. Keys are bytes in memory only: no
message, log or error here ever holds one.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import os
import shutil
import socket
import time
from typing import Dict, FrozenSet, List, Optional, Tuple

from ..errors import NetnsError
from ..system import thread_netns, trusted_files
from .library import pyroute2_class, pyroute2_errors
from .session import Kernel
from .transport import refusal

BACKEND_ENV = "LINUXNET_NETNS_WG"  # "userspace" forces wireguard-go, "kernel" the module
UAPI_DIRECTORY = "/var/run/wireguard"
WIREGUARD_GO = "wireguard-go"
_START_TIMEOUT = 30
_UAPI_TIMEOUT = 10
_PREDECESSOR_TIMEOUT = 5
# What would keep wireguard-go in the foreground, or have its daemon write into our pipes.
_DAEMON_VARIABLES = ("LOG_LEVEL", "WG_PROCESS_FOREGROUND", "WG_TUN_FD", "WG_UAPI_FD")
_UAPI_LIMIT = 1 << 20


@dataclasses.dataclass(frozen=True)
class Peer:
    public_key: str  # base64, as the topology writes it
    endpoint: Optional[str] = None  # "IP:PORT" / "[IPv6]:PORT"; None: whatever the peer roams from
    allowed_ips: FrozenSet[str] = frozenset()
    persistent_keepalive: int = 0

    def as_dict(self) -> Dict[str, object]:
        return {"public_key": self.public_key, "endpoint": self.endpoint,
                "allowed_ips": sorted(self.allowed_ips), "persistent_keepalive": self.persistent_keepalive}


@dataclasses.dataclass(frozen=True)
class Device:
    """A device's configuration as read. ``private_key`` is compared, never shown (repr hides it)."""

    private_key: Optional[bytes] = dataclasses.field(repr=False)
    listen_port: int
    peers: Dict[str, Peer]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to change: None/empty leaves it as it is; ``peers`` are set whole (their allowed IPs replaced)."""

    private_key: Optional[bytes] = dataclasses.field(default=None, repr=False)
    listen_port: Optional[int] = None
    peers: Tuple[Peer, ...] = ()
    removed: Tuple[str, ...] = ()  # public keys


def uapi_name(netns: Optional[str], name: str) -> str:
    """The name wireguard-go is started under (its TUN's first name and its socket's): one per declared
    link, so that the ``wg0`` of many namespaces never meet in the underlay or in the socket directory."""
    digest = hashlib.sha256(("%s\0%s" % (netns or "", name)).encode("utf-8")).hexdigest()
    return "wgn" + digest[:12]


def uapi_socket(netns: Optional[str], name: str) -> str:
    return os.path.join(UAPI_DIRECTORY, uapi_name(netns, name) + ".sock")


def decode_key(text: str) -> Optional[bytes]:
    """The 32 bytes of a base64 WireGuard key, None when ``text`` is none."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (ValueError, TypeError):
        return None
    return raw if len(raw) == 32 else None


def encode_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- choosing -------------------------------------------------------------------------------
def forced_backend() -> Optional[str]:
    value = os.environ.get(BACKEND_ENV)
    return value if value in ("userspace", "kernel") else None


@functools.lru_cache(maxsize=None)
def kernel_has_wireguard() -> bool:
    """Whether the kernel makes a wireguard link: tried once per process in a throw-away namespace."""
    try:
        with thread_netns.scratch_namespace():
            ipr = pyroute2_class("IPRoute")()
            try:
                ipr.link("add", ifname="wgprobe", kind="wireguard")
            finally:
                ipr.close()
    except (OSError, NetnsError, *pyroute2_errors()):
        return False
    return True


def creation_backend() -> str:
    """``kernel`` or ``userspace``, for a device to make."""
    return forced_backend() or ("kernel" if kernel_has_wireguard() else "userspace")


def wireguard_go() -> Optional[str]:
    return shutil.which(WIREGUARD_GO, path=os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin")


# -- the userspace backend: wireguard-go and its UAPI socket ---------------------------------
def start_wireguard_go(kernel: Kernel, underlay: Optional[str], handle: str, obj: str) -> None:
    """Start wireguard-go in ``underlay`` (from an argument list, never a shell). It daemonises once its
    TUN and socket exist; its exit status tells whether they do."""
    program = wireguard_go()
    if program is None:
        raise NetnsError("wireguard-go is not installed (apt-get install wireguard-go)", obj=obj)
    _wait_for_its_predecessor(os.path.join(UAPI_DIRECTORY, handle + ".sock"), obj)
    # Without LOG_LEVEL the daemon writes to /dev/null, so our pipes close when the starter exits.
    try:
        kernel.programs.start_daemon(underlay, [program, handle], _DAEMON_VARIABLES, _START_TIMEOUT)
    except NetnsError as exc:
        raise NetnsError("%s (in the %s)" % (exc.message, exc.obj), obj=obj) from None


def wait_until_served(handle: str, obj: str) -> None:
    """The starter made the TUN and the socket; its daemon looks the TUN up by name once, then answers
    on the socket (checked to be root's). Until it answers, the TUN must keep its first name where it is."""
    read_uapi(os.path.join(UAPI_DIRECTORY, handle + ".sock"), obj)


def _wait_for_its_predecessor(path: str, obj: str) -> None:
    """A daemon whose TUN went with its namespace ends a moment later (and frees its port then): wait
    for it, bounded, rather than have the new one refuse to start."""
    deadline = time.monotonic() + _PREDECESSOR_TIMEOUT
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(path)
        except OSError:
            return  # no socket, or nobody listening on it: wireguard-go replaces a stale one
        finally:
            sock.close()
        if time.monotonic() > deadline:
            raise NetnsError("a wireguard-go of this link still runs (%s answers) though its device is gone"
                             % path, obj=obj)
        time.sleep(0.05)


def _uapi(path: str, request: str, obj: str) -> List[str]:
    """One UAPI exchange: the answer's lines, its final errno checked (never the request in an error)."""
    trusted_files.check_trusted_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(_UAPI_TIMEOUT)
    try:
        sock.connect(path)
        sock.sendall(request.encode("ascii"))
        answer = b""
        while not answer.endswith(b"\n\n") and len(answer) < _UAPI_LIMIT:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    except OSError as exc:
        raise NetnsError("cannot talk to wireguard-go at %s: %s" % (path, exc.strerror or exc), obj=obj) from None
    finally:
        sock.close()
    lines = answer.decode("ascii", "replace").splitlines()
    status = [line for line in lines if line.startswith("errno=")]
    if not status or status[-1] != "errno=0":
        raise NetnsError("wireguard-go refused the %s request (%s)" % (request.split("=", 1)[0],
                                                                       status[-1] if status else "no answer"), obj=obj)
    return [line for line in lines if line and not line.startswith("errno=")]


def read_uapi(path: str, obj: str) -> Device:
    private_key, port = None, 0
    peers: Dict[str, Peer] = {}
    current: Optional[Dict[str, object]] = None
    for line in _uapi(path, "get=1\n\n", obj):
        key, _sep, value = line.partition("=")
        if key == "public_key":
            current = {"public_key": encode_key(bytes.fromhex(value)), "allowed_ips": set()}
            peers[str(current["public_key"])] = Peer(str(current["public_key"]))
        elif current is None:
            if key == "private_key":
                private_key = bytes.fromhex(value)
            elif key == "listen_port":
                port = int(value)
        else:
            _peer_line(current, key, value)
            peers[str(current["public_key"])] = _peer_of(current)
    return Device(private_key, port, peers)


def _peer_line(peer: Dict[str, object], key: str, value: str) -> None:
    if key == "endpoint":
        peer["endpoint"] = value
    elif key == "allowed_ip":
        allowed = peer["allowed_ips"]
        if isinstance(allowed, set):
            allowed.add(value)
    elif key == "persistent_keepalive_interval":
        peer["persistent_keepalive"] = int(value)


def _peer_of(values: Dict[str, object]) -> Peer:
    endpoint = values.get("endpoint")
    keepalive = values.get("persistent_keepalive", 0)
    allowed = values.get("allowed_ips") or set()
    return Peer(str(values["public_key"]), endpoint if isinstance(endpoint, str) else None,
                frozenset(allowed if isinstance(allowed, set) else ()), keepalive if isinstance(keepalive, int) else 0)


def uapi_request(settings: Settings) -> str:
    """The ``set=1`` request for ``settings`` (it holds the private key: sent, never shown)."""
    lines = ["set=1"]
    if settings.private_key is not None:
        lines.append("private_key=" + settings.private_key.hex())
    if settings.listen_port is not None:
        lines.append("listen_port=%d" % settings.listen_port)
    for public_key in settings.removed:
        lines += ["public_key=" + _hex_key(public_key), "remove=true"]
    for peer in settings.peers:
        lines += ["public_key=" + _hex_key(peer.public_key), "replace_allowed_ips=true",
                  "persistent_keepalive_interval=%d" % peer.persistent_keepalive]
        if peer.endpoint is not None:
            lines.append("endpoint=" + peer.endpoint)
        lines += ["allowed_ip=" + network for network in sorted(peer.allowed_ips)]
    return "\n".join(lines) + "\n\n"


def _hex_key(public_key: str) -> str:
    raw = decode_key(public_key)
    if raw is None:
        raise NetnsError("internal error: a peer's public key is not a key")
    return raw.hex()


def configure_uapi(path: str, settings: Settings, obj: str) -> None:
    _uapi(path, uapi_request(settings), obj)


# -- the kernel backend: generic netlink (untested where the kernel has no wireguard module) ------
def read_genetlink(kernel: Kernel, netns: Optional[str], name: str, obj: str) -> Device:
    with refusal("read wireguard device", obj), kernel.entered(netns):
        wg = pyroute2_class("WireGuard")()
        try:
            messages = list(wg.info(name))
        finally:
            wg.close()
    private_key, port = None, 0
    peers: Dict[str, Peer] = {}
    for msg in messages:
        key = msg.get_attr("WGDEVICE_A_PRIVATE_KEY")
        if key is not None:
            private_key = decode_key(key if isinstance(key, str) else key.decode("ascii"))
        port = msg.get_attr("WGDEVICE_A_LISTEN_PORT") or port
        for peer in msg.get_attr("WGDEVICE_A_PEERS") or []:
            parsed = _genetlink_peer(peer)
            peers[parsed.public_key] = parsed
    return Device(private_key, port, peers)


def _genetlink_peer(peer: object) -> Peer:
    get = getattr(peer, "get_attr")
    public_key = get("WGPEER_A_PUBLIC_KEY")
    public_key = public_key.decode("ascii") if isinstance(public_key, bytes) else str(public_key)
    endpoint = get("WGPEER_A_ENDPOINT")
    where = None
    if endpoint is not None and endpoint.get("addr") not in (None, "0.0.0.0", "::"):
        addr = endpoint["addr"]
        where = ("[%s]:%d" if ":" in addr else "%s:%d") % (addr, endpoint["port"])
    allowed = frozenset(item["addr"] for item in get("WGPEER_A_ALLOWEDIPS") or [] if item.get("addr"))
    return Peer(public_key, where, allowed, get("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") or 0)


def configure_genetlink(kernel: Kernel, netns: Optional[str], name: str, settings: Settings, obj: str) -> None:
    with refusal("configure wireguard device", obj), kernel.entered(netns):
        wg = pyroute2_class("WireGuard")()
        try:
            if settings.private_key is not None or settings.listen_port is not None:
                wg.set(name, listen_port=settings.listen_port,
                       private_key=None if settings.private_key is None else encode_key(settings.private_key))
            for public_key in settings.removed:
                wg.set(name, peer={"public_key": public_key, "remove": True})
            for peer in settings.peers:
                wg.set(name, peer=genetlink_peer(peer))
        finally:
            wg.close()


def genetlink_peer(peer: Peer) -> Dict[str, object]:
    """pyroute2's peer structure for ``peer``, its allowed IPs replaced."""
    wanted: Dict[str, object] = {"public_key": peer.public_key, "replace_allowed_ips": True,
                                 "allowed_ips": sorted(peer.allowed_ips),
                                 "persistent_keepalive": peer.persistent_keepalive}
    if peer.endpoint is not None:
        host, _sep, port = peer.endpoint.rpartition(":")
        wanted.update(endpoint_addr=host.strip("[]"), endpoint_port=int(port))
    return wanted
