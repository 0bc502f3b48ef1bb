# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy routing rules in a namespace, keyed by (family, priority, selector): another table is
made to match by deleting the rule and adding it anew (the kernel replaces no rule in place).

The kernel's default rules (priorities 0, 32766 and 32767) are never planned: a declared priority
is 1..32765, and a rule is only ever compared with the declared rules of its key.
"""

from __future__ import annotations

import dataclasses
import errno
import re
import socket
from typing import Any, Dict, List, Optional, Tuple

from .._netlink.constants import (
    FIB_RULE_INVERT,
    FR_ACT_TO_TBL,
    RT_TABLE_MAIN,
    RTPROT_STATIC,
)
from ..errors import NetnsError
from ..kernel.session import Kernel
from ..kernel.transport import ns_label, refusal
from ..model import Change, Kind, Params, Pending, Undo, params_of
from ..validation import IPNetwork, check_ifname, check_optional_netns, ip_address, ip_network

PRIORITY_MIN, PRIORITY_MAX = 1, 32765  # 0, 32766 and 32767 are the kernel's default rules
U32_MAX = 2 ** 32 - 1
FAMILIES = {"inet": 4, "inet6": 6}
FAMILY_NAMES = {4: "inet", 6: "inet6"}
ADDRESS_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
RULE_KEYS = {"priority", "family", "from", "to", "iif", "oif", "fwmark", "fwmask", "table"}
_MARK = re.compile(r"0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10}")
# Selectors the engine does not declare: a rule using one is never taken for a declared rule.
OTHER_SELECTORS = ("FRA_GOTO", "FRA_FLOW", "FRA_TUN_ID", "FRA_SUPPRESS_IFGROUP", "FRA_L3MDEV", "FRA_UID_RANGE",
                   "FRA_IP_PROTO", "FRA_SPORT_RANGE", "FRA_DPORT_RANGE")
SUPPRESS_NOTHING = U32_MAX  # FRA_SUPPRESS_PREFIXLEN of a rule without suppress_prefixlength (-1)


@dataclasses.dataclass(frozen=True)
class Rule:
    family: int  # 4 or 6
    priority: int
    table: int
    src: Optional[IPNetwork] = None  # from
    dst: Optional[IPNetwork] = None  # to
    iif: Optional[str] = None
    oif: Optional[str] = None
    fwmark: Optional[int] = None
    fwmask: Optional[int] = None
    other: bool = False  # read: it uses a selector or action the engine does not declare
    # As read (FRA_PROTOCOL, the action): what a deletion names and the kernel matches, not the rule's identity.
    proto: int = dataclasses.field(default=0, compare=False)
    action: int = dataclasses.field(default=FR_ACT_TO_TBL, compare=False)

    @property
    def identity(self) -> Tuple[Any, ...]:
        """Its key: all but the table."""
        return (self.family, self.priority, str(self.src), str(self.dst), self.iif, self.oif, self.fwmark,
                self.fwmask, self.other)

    def as_dict(self) -> Dict[str, Any]:
        data = {"family": FAMILY_NAMES[self.family], "priority": self.priority,
                "from": None if self.src is None else str(self.src), "to": None if self.dst is None else str(self.dst),
                "iif": self.iif, "oif": self.oif, "fwmark": None if self.fwmark is None else "0x%x" % self.fwmark,
                "fwmask": None if self.fwmask is None else "0x%x" % self.fwmask, "table": self.table,
                "other": self.other}
        return {k: v for k, v in data.items() if v is not None and v is not False}  # priority 0 stays


@dataclasses.dataclass(frozen=True)
class RuleSpec:
    netns: Optional[str]
    rules: Tuple[Rule, ...]
    state: str = "present"


# -- validation ----------------------------------------------------------------------------
def _number(value: Any, field: str, low: int, high: int, what: str) -> int:
    if isinstance(value, str) and _MARK.fullmatch(value):
        value = int(value, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise NetnsError("%s must be an integer %d..%d (or a string such as \"0x1\"), not %r"
                         % (what, low, high, value), obj=field)
    return value


def _table(value: Any, field: str) -> int:
    if value is None or value == "main":
        return RT_TABLE_MAIN
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= U32_MAX:
        raise NetnsError("table must be main or a number 1..%d, not %r" % (U32_MAX, value), obj=field)
    return value


def _priority(value: Any, field: str) -> int:
    if value is None:
        raise NetnsError("a rule needs its priority (%d..%d)" % (PRIORITY_MIN, PRIORITY_MAX), obj=field)
    if isinstance(value, bool) or not isinstance(value, int) or not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise NetnsError("priority must be an integer %d..%d (0, 32766 and 32767 are the kernel's default "
                         "rules), not %r" % (PRIORITY_MIN, PRIORITY_MAX, value), obj=field)
    return value


def _selector_network(value: Any, field: str) -> IPNetwork:
    if not isinstance(value, str):
        raise NetnsError("%r is not an address or network" % (value,), obj=field)
    try:
        return ip_network(value)
    except ValueError as exc:
        raise NetnsError("%r is not an address or network (host bits must be zero): %s" % (value, exc),
                         obj=field) from None


def _family(item: Dict[str, Any], field: str, networks: List[IPNetwork]) -> int:
    declared = item.get("family")
    if declared is not None and declared not in FAMILIES:
        raise NetnsError("family must be inet or inet6, not %r" % (declared,), obj=field + ".family")
    versions = {network.version for network in networks}
    if len(versions) > 1:
        raise NetnsError("from and to are of different families", obj=field + ".to")
    if declared is not None and versions and FAMILIES[declared] not in versions:
        raise NetnsError("family %s does not match the addresses of from/to" % declared, obj=field + ".family")
    return versions.pop() if versions else FAMILIES.get(declared or "inet", 4)


def _marks(item: Dict[str, Any], field: str) -> Tuple[Optional[int], Optional[int]]:
    if item.get("fwmark") is None:
        if item.get("fwmask") is not None:
            raise NetnsError("fwmask needs fwmark", obj=field + ".fwmask")
        return None, None
    mark = _number(item["fwmark"], field + ".fwmark", 0, U32_MAX, "fwmark")
    if item.get("fwmask") is None:
        if mark == 0:
            raise NetnsError("fwmark 0 without fwmask matches every packet; give fwmask (e.g. 0xffffffff)",
                             obj=field + ".fwmark")
        return mark, U32_MAX  # the kernel's mask for a mark given alone
    mask = _number(item["fwmask"], field + ".fwmask", 1, U32_MAX, "fwmask")
    if mark & ~mask:
        raise NetnsError("fwmark 0x%x has bits outside fwmask 0x%x: it matches no packet" % (mark, mask),
                         obj=field + ".fwmark")
    return mark, mask


def parse_rule(item: Any, field: str) -> Rule:
    if not isinstance(item, dict):
        raise NetnsError("a rule must be a mapping", obj=field)
    unknown = set(item) - RULE_KEYS - {"path"}
    if unknown:
        allowed = ", ".join(sorted(RULE_KEYS))
        raise NetnsError("unknown key(s) %s; allowed: %s" % (", ".join(sorted(map(str, unknown))), allowed), obj=field)
    priority = _priority(item.get("priority"), field + ".priority")
    src = None if item.get("from") is None else _selector_network(item["from"], field + ".from")
    dst = None if item.get("to") is None else _selector_network(item["to"], field + ".to")
    family = _family(item, field, [n for n in (src, dst) if n is not None])
    iif = None if item.get("iif") is None else check_ifname(item["iif"], field + ".iif")
    oif = None if item.get("oif") is None else check_ifname(item["oif"], field + ".oif")
    mark, mask = _marks(item, field)
    # a prefix of length 0 selects every address: the kernel keeps no such selector
    return Rule(family, priority, _table(item.get("table"), field + ".table"),
                None if src is None or src.prefixlen == 0 else src, None if dst is None or dst.prefixlen == 0 else dst,
                iif, oif, mark, mask)


def rule_spec(netns: Optional[str], rules: List[Dict[str, Any]], state: str = "present",
              field: str = "rules") -> RuleSpec:
    """Validate raw input into a spec; raises NetnsError naming the field."""
    check_optional_netns(netns, "netns")
    if state not in ("present", "absent"):
        raise NetnsError("state must be 'present' or 'absent', not %r" % (state,), obj="state")
    if not isinstance(rules, (list, tuple)):
        raise NetnsError("must be a list of rules", obj=field)
    parsed = [parse_rule(item, "%s[%d]" % (field, i)) for i, item in enumerate(rules)]
    seen: Dict[Tuple[Any, ...], int] = {}
    for i, rule in enumerate(parsed):
        if rule.identity in seen:
            raise NetnsError("duplicate rule %s (also at %s[%d])" % (rule_key(netns, rule), field, seen[rule.identity]),
                             obj="%s[%d]" % (field, i))
        seen[rule.identity] = i
    return RuleSpec(netns or None, tuple(parsed), state)


def normalised_rule(item: Dict[str, Any], where: str) -> Dict[str, Any]:
    """A rule of the topology format as records and diffs keep it (every key, marks as numbers)."""
    rule = parse_rule(item, where)
    data = rule.as_dict()
    data.update(fwmark=rule.fwmark, fwmask=rule.fwmask)
    return {key: data.get(key) for key in ("family", "priority", "from", "to", "iif", "oif", "fwmark", "fwmask", "table")}


# -- reading -------------------------------------------------------------------------------
def _rule_of(msg: Any) -> Optional[Rule]:
    version = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(msg["family"])
    if version is None:
        return None
    src, dst = msg.get_attr("FRA_SRC"), msg.get_attr("FRA_DST")
    suppress = msg.get_attr("FRA_SUPPRESS_PREFIXLEN")
    other = (msg["action"] != FR_ACT_TO_TBL or msg["tos"] != 0 or bool(msg["flags"] & FIB_RULE_INVERT)
             or suppress not in (None, SUPPRESS_NOTHING) or any(msg.get_attr(name) is not None for name in OTHER_SELECTORS))
    mark, mask = msg.get_attr("FRA_FWMARK"), msg.get_attr("FRA_FWMASK")
    if mark is None and mask:
        mark = 0
    return Rule(version, msg.get_attr("FRA_PRIORITY") or 0, msg.get_attr("FRA_TABLE") or msg["table"],
                None if src is None else ip_network("%s/%d" % (ip_address(src), msg["src_len"])),
                None if dst is None else ip_network("%s/%d" % (ip_address(dst), msg["dst_len"])),
                msg.get_attr("FRA_IIFNAME"), msg.get_attr("FRA_OIFNAME"), mark, mask if mark is not None else None, other,
                msg.get_attr("FRA_PROTOCOL") or 0, msg["action"])


def read_rules(kernel: Kernel, ns: Optional[str]) -> List[Rule]:
    """Every IPv4 and IPv6 rule of ``ns``: one dump."""
    if not kernel.exists(ns):
        return []
    return [rule for rule in map(_rule_of, kernel.netlink.dump(ns, "rules")) if rule is not None]


def rules(kernel: Kernel, ns: Optional[str]) -> List[Rule]:
    """The rules of ``ns`` (read once per run, until invalidated)."""
    return kernel.cache.get(ns, "rules", lambda n: read_rules(kernel, n))


# -- planning ------------------------------------------------------------------------------
def rule_key(ns: Optional[str], rule: Rule) -> str:
    words = [FAMILY_NAMES[rule.family], "priority %d" % rule.priority]
    words += ["%s %s" % (name, value) for name, value in (("from", rule.src), ("to", rule.dst), ("iif", rule.iif),
                                                          ("oif", rule.oif)) if value is not None]
    if rule.fwmark is not None:
        words.append("fwmark 0x%x/0x%x" % (rule.fwmark, rule.fwmask or 0))
    return "%s in %s" % (" ".join(words), ns_label(ns))


def plan_rule_set(spec: RuleSpec, current: List[Rule]) -> List[Change]:
    """Pure: the changes that bring the rules of ``current`` (in the kernel's order) with a declared
    key to ``spec``. Refuses, before any change, a deletion the kernel would carry out on another rule."""
    changes = _rule_changes(spec, current)
    order = list(current)  # as each deletion of the plan finds the kernel's list
    for change in changes:
        params = params_of(change, RuleParams)
        gone = params.old if change.action == "update" else params.rule if change.action == "delete" else None
        if gone is not None:
            _check_deletes_itself(spec.netns, gone, order, change.key)
            order = [rule for rule in order if rule is not gone]
        if change.action != "delete":
            order.append(params.rule)
    return changes


def deleted_by(request: Rule, rules: List[Rule]) -> Optional[Rule]:
    """The rule the kernel deletes for a deletion that names ``request``'s fields: the first of
    ``rules`` (in the kernel's order) equal in each field the deletion names (fib_rules.c, rule_find:
    an unnamed from, to, device, mark or protocol matches any)."""
    named = ((request.src, "src"), (request.dst, "dst"), (request.iif, "iif"), (request.oif, "oif"),
             (request.fwmark or None, "fwmark"), (request.fwmask, "fwmask"), (request.proto or None, "proto"))
    for have in rules:
        if (have.family, have.priority, have.table, have.action) != (request.family, request.priority, request.table,
                                                                     FR_ACT_TO_TBL):
            continue
        if all(value is None or getattr(have, field) == value for value, field in named):
            return have
    return None


def _check_deletes_itself(ns: Optional[str], rule: Rule, order: List[Rule], key: str) -> None:
    taken = deleted_by(rule, order)
    if taken is not rule and taken is not None:
        raise NetnsError("the kernel would delete %s%s instead, the first rule that matches every field of this one "
                         "(it matches an unnamed from, to, device or mark as any): delete or move that rule first"
                         % (rule_key(ns, taken), " (with selectors a topology cannot declare)" if taken.other else ""),
                         obj="rule " + key)


def _rule_changes(spec: RuleSpec, current: List[Rule]) -> List[Change]:
    changes: List[Change] = []
    for want in spec.rules:
        same_key = [have for have in current if have.identity == want.identity]
        if spec.state == "absent":
            changes += [_change("delete", spec.netns, have, None) for have in same_key if have == want]
            continue
        others = [have for have in same_key if have != want]
        if len(others) == len(same_key) and others:  # only other tables: the first is made to match
            changes.append(_change("update", spec.netns, others.pop(0), want))
        elif not same_key:
            changes.append(_change("create", spec.netns, None, want))
        changes += [_change("delete", spec.netns, have, None) for have in others]
    return changes


def _change(action: str, ns: Optional[str], old: Optional[Rule], new: Optional[Rule]) -> Change:
    if new is not None:  # what the engine adds is marked as static, as its routes are
        new = dataclasses.replace(new, proto=RTPROT_STATIC)
    rule = new or old
    if rule is None:
        raise NetnsError("internal error: a rule change without a rule")
    return Change("rule", action, rule_key(ns, rule), None if old is None else old.as_dict(),
                  None if new is None else new.as_dict(), params=RuleParams(ns, rule, old))


def plan_rules(kernel: Kernel, spec: RuleSpec, pending: Pending) -> List[Change]:
    ns_missing = not kernel.exists(spec.netns)
    if spec.state == "absent":
        return [] if ns_missing else plan_rule_set(spec, rules(kernel, spec.netns))
    if ns_missing and not pending.has_namespace(spec.netns):
        raise NetnsError("namespace %s does not exist" % spec.netns, obj="rules")
    return plan_rule_set(spec, rules(kernel, spec.netns))


def rule_report(kernel: Kernel, spec: RuleSpec) -> Dict[str, Any]:
    return {"rules": [r.as_dict() for r in rules(kernel, spec.netns)] if kernel.exists(spec.netns) else []}


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RuleParams(Params):
    ns: Optional[str]
    rule: Rule  # to add, or delete
    old: Optional[Rule] = None  # what an update replaces


def _request(rule: Rule) -> Dict[str, Any]:
    request: Dict[str, Any] = {"family": ADDRESS_FAMILIES[rule.family], "priority": rule.priority,
                               "table": rule.table, "action": FR_ACT_TO_TBL}
    for name, network in (("src", rule.src), ("dst", rule.dst)):
        if network is not None:
            request[name] = str(network.network_address)
            request[name + "_len"] = network.prefixlen
    for name, value in (("iifname", rule.iif), ("oifname", rule.oif), ("fwmark", rule.fwmark), ("fwmask", rule.fwmask),
                        ("protocol", rule.proto or None)):
        if value is not None:
            request[name] = value
    return request


def _send(kernel: Kernel, ns: Optional[str], command: str, rule: Rule, key: str, exist_ok: bool = False) -> None:
    try:
        with refusal("%s rule" % ("add" if command == "append" else command), "rule " + key):
            kernel.netlink.requests(ns).rule(command, **_request(rule))
    except NetnsError as exc:
        # an undo's second pass may find the rule back (or gone) already
        if not exist_ok or exc.errno not in (errno.EEXIST, errno.ENOENT):
            raise


class RuleKind(Kind):
    name = "rule"
    params = (RuleParams,)
    spec = RuleSpec
    read = staticmethod(rules)
    plan = staticmethod(plan_rules)
    report = staticmethod(rule_report)

    def apply(self, kernel: Kernel, change: Change) -> None:
        self._apply(kernel, change, exist_ok=False)

    def _apply(self, kernel: Kernel, change: Change, exist_ok: bool) -> None:
        params = params_of(change, RuleParams)
        try:
            if change.action == "delete":
                _send(kernel, params.ns, "del", params.rule, change.key, exist_ok)
                return
            if change.action == "update":
                if params.old is None:
                    raise NetnsError("internal error: a rule update without the rule it replaces", obj=change.summary())
                _send(kernel, params.ns, "del", params.old, change.key, exist_ok)
            _send(kernel, params.ns, "append", params.rule, change.key, exist_ok)
        finally:
            kernel.cache.invalidate(params.ns, "rules")

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, RuleParams)
        if change.action == "create":
            inverse = Change("rule", "delete", change.key, params=params)
        elif change.action == "delete":
            inverse = Change("rule", "create", change.key, params=params)
        elif params.old is not None:
            inverse = Change("rule", "update", change.key, params=RuleParams(params.ns, params.old, params.rule))
        else:
            raise NetnsError("internal error: a rule update without the rule it replaces", obj=change.summary())
        return lambda kernel_: self._apply(kernel_, inverse, exist_ok=True)


RULE = RuleKind()
