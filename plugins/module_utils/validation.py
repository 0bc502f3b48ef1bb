# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks that run before anything is changed."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Optional, Union

from .errors import NetnsError

IFNAMSIZ = 16  # including the trailing NUL: at most 15 bytes of name
NETNS_NAME_MAX = 255  # a file name under /run/netns
_IFNAME_FORBIDDEN = re.compile(r"[\s/:%\x00]")
_SYSCTL_KEY = re.compile(r"net[./][A-Za-z0-9_.\-/]+")
_MAC = re.compile(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}")

IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


# ipaddress parses slowly (a Python loop per octet) and its objects never change: a run that
# parses the same addresses for the spec, the kernel's dump and each plan parses each once.
@functools.lru_cache(maxsize=None)
def ip_interface(text: str) -> IPInterface:
    return ipaddress.ip_interface(text)


@functools.lru_cache(maxsize=None)
def ip_address(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


@functools.lru_cache(maxsize=None)
def ip_network(text: str) -> IPNetwork:
    return ipaddress.ip_network(text, strict=True)


def check_netns_name(name: object, field: str = "netns") -> str:
    """A namespace name becomes a file name under /run/netns and /etc/netns."""
    if not isinstance(name, str) or name == "":
        raise NetnsError("namespace name must be a non-empty string", obj=field)
    if name in (".", "..") or "/" in name or "\x00" in name:
        raise NetnsError("invalid namespace name %r: '/', NUL, '.' and '..' are not allowed" % name, obj=field)
    if name.startswith("-"):
        raise NetnsError("invalid namespace name %r: must not start with '-'" % name, obj=field)
    if any(ch.isspace() for ch in name):
        raise NetnsError("invalid namespace name %r: whitespace is not allowed" % name, obj=field)
    _check_ascii(name, "namespace", field)
    if len(name.encode("utf-8", "surrogateescape")) > NETNS_NAME_MAX:
        raise NetnsError("namespace name is longer than %d bytes" % NETNS_NAME_MAX, obj=field)
    return name


def check_optional_netns(name: Optional[str], field: str = "netns") -> Optional[str]:
    """``None`` or ``""`` means the root (host) namespace."""
    if name is None or name == "":
        return None
    return check_netns_name(name, field)


def check_ifname(name: object, field: str = "name") -> str:
    """Interface names: 1..15 bytes, no whitespace, '/', ':', '%' or NUL, not '.'/'..'."""
    if not isinstance(name, str) or name == "":
        raise NetnsError("interface name must be a non-empty string", obj=field)
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) >= IFNAMSIZ:
        raise NetnsError(
            "interface name %r is %d bytes long; the kernel allows at most %d" % (name, len(encoded), IFNAMSIZ - 1),
            obj=field,
        )
    if name in (".", "..") or _IFNAME_FORBIDDEN.search(name):
        raise NetnsError("invalid interface name %r" % name, obj=field)
    if name.startswith("-"):
        raise NetnsError("invalid interface name %r: must not start with '-'" % name, obj=field)
    _check_ascii(name, "interface", field)
    return name


def _check_ascii(name: str, what: str, field: str) -> None:
    # The kernel takes any bytes, but systemd unit names, udev rules and scripts quoting names do not.
    if not (name.isascii() and name.isprintable()):
        raise NetnsError("invalid %s name %r: only printable ASCII characters are allowed" % (what, name), obj=field)


def parse_interface(value: object, field: str = "address") -> IPInterface:
    """An address with its prefix, e.g. ``192.168.50.2/24`` or ``fd00::1/64``."""
    if not isinstance(value, str) or "/" not in value:
        raise NetnsError("%r is not an address in CIDR notation (ADDRESS/PREFIX)" % (value,), obj=field)
    try:
        return ip_interface(value)
    except ValueError as exc:
        raise NetnsError("%r is not a valid address: %s" % (value, exc), obj=field) from None


def parse_address(value: object, field: str) -> IPAddress:
    if not isinstance(value, str):
        raise NetnsError("%r is not an IP address" % (value,), obj=field)
    try:
        return ip_address(value)
    except ValueError as exc:
        raise NetnsError("%r is not a valid IP address: %s" % (value, exc), obj=field) from None


def parse_destination(value: object, field: str = "dst", family: Optional[int] = None) -> IPNetwork:
    """A route destination: ``default``, an address (host route) or a network."""
    if value in ("default", "default4", None) and family != 6:
        return ip_network("0.0.0.0/0")
    if value in ("default", "default6") or (value is None and family == 6):
        return ip_network("::/0")
    if not isinstance(value, str):
        raise NetnsError("%r is not a route destination" % (value,), obj=field)
    try:
        return ip_network(value)
    except ValueError as exc:
        raise NetnsError("%r is not a valid destination network: %s" % (value, exc), obj=field) from None


def check_mac(value: Optional[str], field: str = "mac") -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not _MAC.fullmatch(value):
        raise NetnsError("%r is not a MAC address (xx:xx:xx:xx:xx:xx)" % (value,), obj=field)
    if int(value[:2], 16) & 1:
        raise NetnsError("%r is a multicast MAC address; a link needs a unicast one" % value, obj=field)
    return value.lower()


def check_mtu(value: Optional[int], field: str = "mtu") -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 68 <= value <= 65535:
        raise NetnsError("MTU %r is out of range (68..65535)" % (value,), obj=field)
    return value


def check_sysctl_key(key: object, field: str = "sysctls") -> str:
    """Only ``net.*`` keys are per namespace; anything else would change the whole host."""
    if not isinstance(key, str) or not _SYSCTL_KEY.fullmatch(key) or ".." in key or "//" in key:
        raise NetnsError(
            "%r is not a per-namespace sysctl: only net.* keys are namespaced" % (key,), obj=field
        )
    return key


def sysctl_path(key: str) -> str:
    """``net.ipv4.ip_forward`` -> ``/proc/sys/net/ipv4/ip_forward``; a key with '/' is taken as a path
    (needed for interface names that contain dots, e.g. ``net/ipv4/conf/eth0.10/forwarding``)."""
    relative = key if "/" in key else key.replace(".", "/")
    return "/proc/sys/" + relative


def normalise_sysctl_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return " ".join(str(value).split())
