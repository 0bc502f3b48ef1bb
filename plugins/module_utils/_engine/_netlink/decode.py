# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rtnetlink messages decoded into ``Message`` objects, only the attributes the engine reads.

Through pyroute2 every attribute of every dumped message is decoded — a link carries some fifty,
statistics included; profiled at 1000 namespaces, that made the verification pass after an apply a
third of a boot-time restore. Here only the attributes below are decoded, to the values pyroute2
gives them (tests compare both on live dumps).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .constants import (
    HEADER,
    IFA_ADDRESS,
    IFA_FLAGS,
    IFA_LOCAL,
    IFADDRMSG,
    IFINFOMSG,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINK,
    IFLA_LINK_NETNSID,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_VXLAN_GROUP,
    IFLA_VXLAN_GROUP6,
    IFLA_VXLAN_ID,
    IFLA_VXLAN_LINK,
    IFLA_VXLAN_LOCAL,
    IFLA_VXLAN_LOCAL6,
    IFLA_VXLAN_PORT,
    FIB_RULE_HDR,
    FRA_DPORT_RANGE,
    FRA_DST,
    FRA_FLOW,
    FRA_FWMARK,
    FRA_FWMASK,
    FRA_GOTO,
    FRA_IIFNAME,
    FRA_IP_PROTO,
    FRA_L3MDEV,
    FRA_OIFNAME,
    FRA_PRIORITY,
    FRA_PROTOCOL,
    FRA_SPORT_RANGE,
    FRA_SRC,
    FRA_SUPPRESS_IFGROUP,
    FRA_SUPPRESS_PREFIXLEN,
    FRA_TABLE,
    FRA_TUN_ID,
    FRA_UID_RANGE,
    NETNSA_NSID,
    NFGENMSG,
    NFTA_GEN_ID,
    NLA,
    NLA_TYPE_MASK,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_PREFSRC,
    RTA_PRIORITY,
    RTA_TABLE,
    RTGENMSG,
    RTMSG,
    S32,
    U32,
)

Decoder = Callable[[bytes], Any]


def _string(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


def _mac(data: bytes) -> str:
    return ":".join("%02x" % byte for byte in data)


def _ip(data: bytes) -> Optional[str]:
    if len(data) == 4:
        return socket.inet_ntop(socket.AF_INET, data)
    if len(data) == 16:
        return socket.inet_ntop(socket.AF_INET6, data)
    return None


def _u8(data: bytes) -> int:
    return data[0]


def _u32(data: bytes) -> int:
    return U32.unpack_from(data)[0]


def _be32(data: bytes) -> int:
    return int.from_bytes(data[:4], "big")


def _s32(data: bytes) -> int:
    return S32.unpack_from(data)[0]


def _raw(data: bytes) -> bytes:
    return bytes(data)


def _be16(data: bytes) -> int:
    return int.from_bytes(data[:2], "big")


# A kind's IFLA_INFO_DATA, for the kinds whose data the planners read (a vxlan's cannot change in place).
INFO_DATA: Dict[str, Dict[int, Tuple[str, Decoder]]] = {
    "vxlan": {IFLA_VXLAN_ID: ("IFLA_VXLAN_ID", _u32), IFLA_VXLAN_GROUP: ("IFLA_VXLAN_GROUP", _ip),
              IFLA_VXLAN_GROUP6: ("IFLA_VXLAN_GROUP6", _ip), IFLA_VXLAN_LOCAL: ("IFLA_VXLAN_LOCAL", _ip),
              IFLA_VXLAN_LOCAL6: ("IFLA_VXLAN_LOCAL6", _ip), IFLA_VXLAN_LINK: ("IFLA_VXLAN_LINK", _u32),
              IFLA_VXLAN_PORT: ("IFLA_VXLAN_PORT", _be16)},
}


def _link_info(data: bytes) -> "Message":
    found = attributes(data, 0, {IFLA_INFO_KIND: ("IFLA_INFO_KIND", _string), IFLA_INFO_DATA: ("IFLA_INFO_DATA", _raw)})
    kind_data = found.pop("IFLA_INFO_DATA", None)
    wanted = INFO_DATA.get(found.get("IFLA_INFO_KIND"))
    if wanted is not None and kind_data is not None:
        found["IFLA_INFO_DATA"] = Message({}, attributes(kind_data, 0, wanted))
    return Message({}, found)


class Kind(NamedTuple):
    """One kind of rtnetlink object as dumped: its fixed header (and its values' names), and the
    attributes the engine reads, by number."""

    header: struct.Struct
    fields: Tuple[str, ...]
    attributes: Dict[int, Tuple[str, Decoder]]


KINDS: Dict[str, Kind] = {
    "links": Kind(IFINFOMSG, ("family", "ifi_type", "index", "flags", "change"),
                  {IFLA_ADDRESS: ("IFLA_ADDRESS", _mac), IFLA_IFNAME: ("IFLA_IFNAME", _string),
                   IFLA_MTU: ("IFLA_MTU", _u32), IFLA_LINK: ("IFLA_LINK", _u32), IFLA_MASTER: ("IFLA_MASTER", _u32),
                   IFLA_LINKINFO: ("IFLA_LINKINFO", _link_info), IFLA_LINK_NETNSID: ("IFLA_LINK_NETNSID", _s32)}),
    "addresses": Kind(IFADDRMSG, ("family", "prefixlen", "flags", "scope", "index"),
                      {IFA_ADDRESS: ("IFA_ADDRESS", _ip), IFA_LOCAL: ("IFA_LOCAL", _ip),
                       IFA_FLAGS: ("IFA_FLAGS", _u32)}),
    "routes": Kind(RTMSG, ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type", "flags"),
                   {RTA_DST: ("RTA_DST", _ip), RTA_OIF: ("RTA_OIF", _u32), RTA_GATEWAY: ("RTA_GATEWAY", _ip),
                    RTA_PRIORITY: ("RTA_PRIORITY", _u32), RTA_PREFSRC: ("RTA_PREFSRC", _ip),
                    RTA_TABLE: ("RTA_TABLE", _u32)}),
    # Policy routing rules: the selectors the engine declares, decoded; the others it only needs to
    # know are there (a rule using one of them is never taken for a declared one), kept as bytes.
    "rules": Kind(FIB_RULE_HDR, ("family", "dst_len", "src_len", "tos", "table", "res1", "res2", "action", "flags"),
                  {FRA_DST: ("FRA_DST", _ip), FRA_SRC: ("FRA_SRC", _ip), FRA_IIFNAME: ("FRA_IIFNAME", _string),
                   FRA_OIFNAME: ("FRA_OIFNAME", _string), FRA_PRIORITY: ("FRA_PRIORITY", _u32),
                   FRA_FWMARK: ("FRA_FWMARK", _u32), FRA_FWMASK: ("FRA_FWMASK", _u32), FRA_TABLE: ("FRA_TABLE", _u32),
                   FRA_PROTOCOL: ("FRA_PROTOCOL", _u8), FRA_SUPPRESS_PREFIXLEN: ("FRA_SUPPRESS_PREFIXLEN", _u32),
                   FRA_GOTO: ("FRA_GOTO", _raw), FRA_FLOW: ("FRA_FLOW", _raw), FRA_TUN_ID: ("FRA_TUN_ID", _raw),
                   FRA_SUPPRESS_IFGROUP: ("FRA_SUPPRESS_IFGROUP", _raw), FRA_L3MDEV: ("FRA_L3MDEV", _raw),
                   FRA_UID_RANGE: ("FRA_UID_RANGE", _raw), FRA_IP_PROTO: ("FRA_IP_PROTO", _raw),
                   FRA_SPORT_RANGE: ("FRA_SPORT_RANGE", _raw), FRA_DPORT_RANGE: ("FRA_DPORT_RANGE", _raw)}),
}


class Message:
    """The part of a netlink message the engine reads, shaped like pyroute2's: ``msg['index']``,
    ``msg.get_attr('IFLA_IFNAME')``."""

    __slots__ = ("fields", "attrs")

    def __init__(self, fields: Dict[str, int], attrs: Dict[str, Any]) -> None:
        self.fields = fields
        self.attrs = attrs

    def __getitem__(self, name: str) -> int:
        return self.fields[name]

    def get_attr(self, name: str) -> Any:
        return self.attrs.get(name)


def attributes(data: bytes, offset: int, wanted: Dict[int, Tuple[str, Decoder]]) -> Dict[str, Any]:
    """The ``wanted`` attributes (number -> name, decoder) from ``offset`` to the end of ``data``, by name."""
    found: Dict[str, Any] = {}
    end = len(data)
    while offset + NLA.size <= end:
        length, nla_type = NLA.unpack_from(data, offset)
        if length < NLA.size:
            break
        known = wanted.get(nla_type & NLA_TYPE_MASK)
        if known is not None:
            found[known[0]] = known[1](data[offset + NLA.size:offset + length])
        offset += (length + 3) & ~3
    return found


def decode(kind: str, data: bytes) -> Message:
    """One message (starting with its nlmsghdr) of ``kind``."""
    spec = KINDS[kind]
    values = spec.header.unpack_from(data, HEADER.size)
    return Message(dict(zip(spec.fields, values)), attributes(data, HEADER.size + spec.header.size, spec.attributes))


def decode_nsid(reply: bytes) -> Optional[int]:
    """The id in an RTM_NEWNSID reply; None when none is assigned."""
    nsid = attributes(reply, HEADER.size + RTGENMSG.size, {NETNSA_NSID: ("nsid", _s32)}).get("nsid")
    return None if nsid is None or nsid < 0 else nsid


def decode_nft_generation(reply: bytes) -> Optional[int]:
    """The generation id in an NFT_MSG_NEWGEN reply, None when it carries none."""
    return attributes(reply, HEADER.size + NFGENMSG.size, {NFTA_GEN_ID: ("id", _be32)}).get("id")


def split_messages(data: bytes) -> List[bytes]:
    """The messages of a buffer of netlink messages (e.g. requests pyroute2's IPBatch compiled)."""
    messages = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length = HEADER.unpack_from(data, offset)[0]
        if length < HEADER.size:
            raise OSError(errno.EPROTO, "malformed netlink message")
        messages.append(data[offset:offset + length])
        offset += (length + 3) & ~3
    return messages
