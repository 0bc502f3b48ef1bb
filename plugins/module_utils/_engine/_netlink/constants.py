# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel's netlink numbers and layouts the engine uses, each defined here once
(linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h, linux/if.h, linux/net_namespace.h,
linux/netfilter/nf_tables.h)."""

from __future__ import annotations

import struct

# -- netlink -------------------------------------------------------------------------------
NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x4, 0x300, 0x10
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x200, 0x400, 0x800
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
SO_NETNS_COOKIE = 71  # socket option (asm-generic/socket.h): the cookie of the socket's namespace

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
NLA = struct.Struct("=HH")  # length, type
S32, U32, U64 = struct.Struct("=i"), struct.Struct("=I"), struct.Struct("=Q")

# -- rtnetlink: message types and fixed headers --------------------------------------------
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34
RTM_NEWNSID, RTM_GETNSID = 88, 90

IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
# fib_rule_hdr (linux/fib_rules.h): family, dst_len, src_len, tos, table, res1, res2, action, flags
FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")
RTGENMSG = struct.Struct("=Bxxx")  # family (padded)
# A whole RTM_GETNSID request: nlmsghdr, rtgenmsg, one u32 attribute
NSID_REQUEST = struct.Struct("=IHHIIBxxxHHI")

# -- rtnetlink: attributes -----------------------------------------------------------------
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_NET_NS_FD, IFLA_LINK_NETNSID = 18, 28, 37
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2  # inside IFLA_LINKINFO
# inside a vxlan's IFLA_INFO_DATA; the port is in network byte order
IFLA_VXLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_PORT = 1, 2, 3, 4, 15
IFLA_VXLAN_GROUP6, IFLA_VXLAN_LOCAL6 = 16, 17
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
NETNSA_NSID, NETNSA_FD = 1, 3
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_GOTO, FRA_PRIORITY, FRA_FWMARK, FRA_FLOW = 1, 2, 3, 4, 6, 10, 11
FRA_TUN_ID, FRA_SUPPRESS_IFGROUP, FRA_SUPPRESS_PREFIXLEN, FRA_TABLE, FRA_FWMASK, FRA_OIFNAME = 12, 13, 14, 15, 16, 17
FRA_L3MDEV, FRA_UID_RANGE, FRA_PROTOCOL, FRA_IP_PROTO, FRA_SPORT_RANGE, FRA_DPORT_RANGE = 19, 20, 21, 22, 23, 24

# -- rtnetlink: values ---------------------------------------------------------------------
IFF_UP = 0x1
IFA_F_NODAD, IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x02, 0x08, 0x40
RT_TABLE_COMPAT, RT_TABLE_DEFAULT, RT_TABLE_MAIN, RT_TABLE_LOCAL = 252, 253, 254, 255
RT_TABLE_NAMES = {"main": RT_TABLE_MAIN, "default": RT_TABLE_DEFAULT}
RTN_UNICAST = 1
FR_ACT_TO_TBL = 1  # a rule's action: look the packet up in its table
FIB_RULE_INVERT = 0x2  # a rule's flag: `ip rule add not ...`
RTNH_F_ONLINK = 4
RTPROT_KERNEL = 2  # routes the kernel adds itself, e.g. an address's prefix route
RTPROT_STATIC = 4
RTPROT_RA = 9  # routes from a router advertisement
# a route's scope by name, as iproute2 names them
RT_SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
# IFLA_MACVLAN_MODE: a macvlan link's mode by name
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}

# -- nfnetlink (nf_tables) -----------------------------------------------------------------
NFT_MSG_GETGEN, NFT_MSG_NEWGEN = (10 << 8) | 16, (10 << 8) | 15  # subsystem nf_tables (10) << 8 | message
NFTA_GEN_ID = 1
NFGENMSG = struct.Struct("=BBH")  # family, version, resource id
# A whole NFT_MSG_GETGEN request: nlmsghdr, nfgenmsg
NFGEN_REQUEST = struct.Struct("=IHHIIBBH")
