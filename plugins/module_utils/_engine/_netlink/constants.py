# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel's netlink numbers and layouts the engine uses, each defined here once
(linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if.h)."""

from __future__ import annotations

import struct

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x4, 0x300, 0x10
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
NLA = struct.Struct("=HH")  # length, type
S32, U32 = struct.Struct("=i"), struct.Struct("=I")

RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25

IFF_UP = 0x1
RT_TABLE_COMPAT, RTN_UNICAST = 252, 1
RTPROT_KERNEL = 2  # routes the kernel adds itself, e.g. an address's prefix route
RTPROT_STATIC = 4
# IFLA_MACVLAN_MODE: a macvlan link's mode by name
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
