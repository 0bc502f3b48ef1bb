# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every kind, registered once: a spec's type says which kind plans it, a change's params type which
kind applies and undoes it."""

from __future__ import annotations

from typing import Dict, Tuple

from ..errors import NetnsError
from ..model import Change, Kind
from .address import ADDRESS
from .device import DEVICE
from .iptables import IPTABLES
from .link import LINK_ATTRIBUTES
from .namespace import NAMESPACE, RESOLV_CONF, SYSCTL
from .nftables import NFTABLES
from .route import ROUTE
from .rule import RULE
from .veth import VETH
from .virtual_link import BRIDGE_PORT, VIRTUAL_LINK
from .vxlan import VXLAN
from .wireguard import WIREGUARD

KINDS: Tuple[Kind, ...] = (NAMESPACE, SYSCTL, RESOLV_CONF, VETH, VIRTUAL_LINK, VXLAN, BRIDGE_PORT, DEVICE,
                           LINK_ATTRIBUTES, ADDRESS, ROUTE, RULE, IPTABLES, NFTABLES, WIREGUARD)

_BY_PARAMS: Dict[type, Kind] = {params: kind for kind in KINDS for params in kind.params}
_BY_SPEC: Dict[type, Kind] = {kind.spec: kind for kind in KINDS if kind.spec is not None}


def kind_of(change: Change) -> Kind:
    kind = _BY_PARAMS.get(type(change.params))
    if kind is None:
        raise NetnsError("no kind applies %s" % change.summary())
    return kind


def kind_of_spec(spec: object) -> Kind:
    kind = _BY_SPEC.get(type(spec))
    if kind is None or kind.plan is None:
        raise NetnsError("no kind plans a %s" % type(spec).__name__)
    return kind
