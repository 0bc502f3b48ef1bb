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
# /proc/sys/net/ipv4/conf/all and .../default: the kernel refuses links with these names (EINVAL).
RESERVED_IFNAMES = ("all", "default")
LOOPBACK = "lo"  # in every namespace from its creation: a link of that name cannot be created
IPV6_MIN_MTU = 1280  # below it a link has no IPv6 at all: no addresses, no routes
# Control characters in a sysctl value: the kernel reads only up to a line break (tabs and
# spaces separate the numbers of a vector, e.g. tcp_rmem).
_SYSCTL_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

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


def check_new_link_name(name: object, field: str = "name") -> str:
    """The name of a link to create: an interface name the kernel gives a new link."""
    check_ifname(name, field)
    if name == LOOPBACK:
        raise NetnsError("every namespace has its own loopback link lo; a created link needs another name",
                         obj=field)
    if name in RESERVED_IFNAMES:
        raise NetnsError("the kernel refuses a link named %r: it names the settings of all links "
                         "(/proc/sys/net/*/conf/%s)" % (name, name), obj=field)
    return name  # type: ignore[return-value]


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


# ipaddress's is_* properties build and test one constant network after another; a spec of
# hundreds of namespaces has as many addresses: integer tests, each address classified once.
@functools.lru_cache(maxsize=None)
def _special(ip: IPAddress) -> Optional[str]:
    """What makes ``ip`` no unicast address of one host: None, or unspecified, this network,
    multicast, broadcast or loopback."""
    if ip.version == 6:
        return ("unspecified" if ip.is_unspecified else "multicast" if ip.is_multicast
                else "loopback" if ip.is_loopback else None)
    value = int(ip)
    first = value >> 24
    if value == 0:
        return "unspecified"
    if first == 0:
        return "this network"  # 0.0.0.0/8
    if 224 <= first <= 239:
        return "multicast"
    if value == 0xFFFFFFFF:
        return "broadcast"
    return "loopback" if first == 127 else None


_SPECIAL = {"unspecified": "the unspecified address", "this network": "in 0.0.0.0/8, which means this network",
            "multicast": "a multicast address", "broadcast": "the broadcast address", "loopback": "a loopback address"}


def check_host_address(iface: IPInterface, dev: str, field: str) -> IPInterface:
    """An address a link can hold: not unspecified, multicast, broadcast or in 0.0.0.0/8, and a
    loopback address only on lo (the kernel refuses the IPv6 ones, and the IPv4 ones do not work)."""
    ip = iface.ip  # a new object at each access
    special = _special(ip)
    if special == "loopback" and dev != LOOPBACK:
        raise NetnsError("%s is a loopback address; it belongs on lo, not on %s" % (iface, dev), obj=field)
    if special in ("unspecified", "this network"):
        raise NetnsError("%s is not a host address: it is %s" % (iface, _SPECIAL[special]), obj=field)
    if special is not None and special != "loopback":
        raise NetnsError("%s is %s; a link holds unicast addresses" % (iface, _SPECIAL[special]), obj=field)
    prefixlen = iface.network.prefixlen
    if ip.version == 4 and prefixlen <= 30 and (int(ip) | ((1 << (32 - prefixlen)) - 1)) == int(ip):
        raise NetnsError("%s is the broadcast address of its subnet, not a host address" % iface, obj=field)
    return iface


def check_gateway(via: IPAddress, field: str) -> IPAddress:
    """A gateway the kernel takes: a unicast address of another host."""
    special = _special(via)
    if special is not None:
        raise NetnsError("gateway %s is %s; a gateway is a unicast address of another host"
                         % (via, _SPECIAL[special]), obj=field)
    return via


def check_source(src: IPAddress, field: str) -> IPAddress:
    if _special(src) in ("unspecified", "multicast", "broadcast"):
        raise NetnsError("src %s is not a unicast address" % src, obj=field)
    return src


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
        raise NetnsError("%r is a multicast (or broadcast) MAC address; a link needs a unicast one" % value, obj=field)
    return value.lower()


def check_link_mac(value: Optional[str], field: str = "mac") -> Optional[str]:
    """A MAC the kernel gives a link: also not the all-zero one."""
    value = check_mac(value, field)
    if value is not None and int(value.replace(":", ""), 16) == 0:
        raise NetnsError("%r is the all-zero MAC address, which the kernel refuses for a link" % value, obj=field)
    return value


def check_int(value: object, field: str, low: int, high: int) -> Optional[int]:
    """An optional integer from ``low`` to ``high`` (not a bool)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise NetnsError("must be an integer from %d to %d, not %r" % (low, high, value), obj=field)
    return value


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


def check_sysctl_value(value: object, field: str) -> str:
    """A scalar on one line, normalised as the kernel prints it back (words separated by one space)."""
    if value is None or isinstance(value, (dict, list)):
        raise NetnsError("needs a scalar value", obj=field)
    if isinstance(value, str) and _SYSCTL_VALUE_FORBIDDEN.search(value):
        raise NetnsError("%r has a line break or another control character; a sysctl value is one line" % value,
                         obj=field)
    return normalise_sysctl_value(value)


def per_link_sysctl(key: str) -> Optional[str]:
    """The link a per-interface key names (``net.ipv4.conf.LINK.x``, ``net.ipv6.neigh.LINK.x``, or
    the same with '/' for names with dots), or None for a key of the whole namespace."""
    parts = key.split("/") if "/" in key else key.split(".")
    if len(parts) == 5 and parts[2] in ("conf", "neigh") and parts[3] not in RESERVED_IFNAMES:
        return parts[3]
    return None


def with_link(key: str, link: str) -> str:
    """``key`` (a per-interface one) for another link, e.g. ``net.ipv4.conf.lo.forwarding``."""
    separator = "/" if "/" in key else "."
    parts = key.split(separator)
    return separator.join(parts[:3] + [link] + parts[4:])


def normalise_sysctl_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return " ".join(str(value).split())
