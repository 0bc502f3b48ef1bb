# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Addresses as the kernel reports them: read by the address kind and, for gateways, the route kind."""

from __future__ import annotations

import dataclasses
from typing import List, Optional

from .._netlink.constants import IFA_F_TENTATIVE
from ..kernel.session import Kernel
from ..validation import IPInterface, ip_interface
from .link import links


@dataclasses.dataclass(frozen=True)
class Address:
    dev: str
    interface: IPInterface
    flags: int = 0

    @property
    def tentative(self) -> bool:
        return bool(self.flags & IFA_F_TENTATIVE)


def read_addresses(kernel: Kernel, ns: Optional[str]) -> List[Address]:
    """Every address of ``ns``: one dump."""
    if not kernel.exists(ns):
        return []
    names = {link.index: name for name, link in links(kernel, ns).items()}
    messages = kernel.netlink.dump(ns, "addresses")
    result = []
    for msg in messages:
        text = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
        if text is None or msg["index"] not in names:
            continue
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        result.append(Address(names[msg["index"]], ip_interface("%s/%d" % (text, msg["prefixlen"])), flags))
    return result


def addresses(kernel: Kernel, ns: Optional[str]) -> List[Address]:
    return kernel.cache.get(ns, "addresses", lambda n: read_addresses(kernel, n))
