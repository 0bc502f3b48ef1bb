# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure iptables text handling: parse iptables-save, plan chain contents, render iptables-restore."""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any, Dict, List, Optional, Tuple

from .errors import NetnsError

BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
POLICIES = ("ACCEPT", "DROP")
ZERO = "[0:0]"


@dataclasses.dataclass
class Chain:
    name: str
    policy: Optional[str]  # None for user chains
    counters: str = ZERO
    rules: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (counters, rule text)

    def texts(self) -> List[str]:
        return [text for _, text in self.rules]


@dataclasses.dataclass
class Table:
    name: str
    chains: Dict[str, Chain]

    def copy(self) -> "Table":
        return Table(self.name, {n: Chain(c.name, c.policy, c.counters, list(c.rules)) for n, c in self.chains.items()})


def empty_table(name: str) -> Table:
    """A table as a new namespace has it: built-in chains, ACCEPT, no rules."""
    return Table(name, {chain: Chain(chain, "ACCEPT") for chain in BUILTIN_CHAINS[name]})


def parse_save(text: str) -> Dict[str, Table]:
    """``iptables-save -c`` output -> tables by name."""
    tables: Dict[str, Table] = {}
    current: Optional[Table] = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = Table(line[1:].strip(), {})
            tables[current.name] = current
        elif line == "COMMIT":
            current = None
        elif current is None:
            raise NetnsError("unexpected iptables-save line outside a table: %r" % line)
        elif line.startswith(":"):
            name, policy, counters = (line[1:].split(" ") + ["", ""])[:3]
            current.chains[name] = Chain(name, None if policy == "-" else policy, counters or ZERO)
        else:
            counters, _, rest = line.partition(" ") if line.startswith("[") else (ZERO, "", line)
            words = rest.split(" ", 2)
            if len(words) < 2 or words[0] != "-A" or words[1] not in current.chains:
                raise NetnsError("cannot read iptables-save line %r" % line)
            current.chains[words[1]].rules.append((counters, words[2] if len(words) > 2 else ""))
    return tables


def render_restore(table: Table) -> str:
    """The whole table as iptables-restore -c input (one transaction)."""
    lines = ["*" + table.name]
    for chain in table.chains.values():
        # A restore rebuilds the whole table, built-in chains as ACCEPT with zero counters: leave
        # those out, since each declared policy costs the nf_tables backend a chain update.
        if chain.name in BUILTIN_CHAINS[table.name] and (chain.policy, chain.counters) == ("ACCEPT", ZERO):
            continue
        lines.append(":%s %s %s" % (chain.name, chain.policy or "-", chain.counters))
    for chain in table.chains.values():
        lines += ["%s -A %s %s" % (counters, chain.name, text) for counters, text in chain.rules]
    return "\n".join(lines + ["COMMIT", ""])


# -- rules as the user writes them ---------------------------------------------------------
_STRUCTURED = (  # key, option(s); order is irrelevant: iptables itself canonicalises
    ("source", "-s"), ("destination", "-d"), ("in_interface", "-i"), ("out_interface", "-o"),
    ("protocol", "-p"), ("source_port", "--sport"), ("destination_port", "--dport"),
)
_TARGET_OPTIONS = (("to_destination", "--to-destination"), ("to_source", "--to-source"), ("to_ports", "--to-ports"))
STRUCTURED_KEYS = {k for k, _ in _STRUCTURED + _TARGET_OPTIONS} | {"ctstate", "icmp_type", "comment", "jump",
                                                                    "goto", "match"}


def rule_words(rule: Any, ip_version: str, field: str) -> List[str]:
    """A rule given as iptables syntax (``-p tcp --dport 22 -j ACCEPT``) or structured -> words."""
    if isinstance(rule, str):
        try:
            words = shlex.split(rule)
        except ValueError as exc:
            raise NetnsError("cannot split rule %r: %s" % (rule, exc), obj=field) from None
        if not words:
            raise NetnsError("empty rule", obj=field)
        if words[0] in ("-A", "-I", "-D", "-N", "-X", "-F", "-P", "-t", "--append", "--table"):
            raise NetnsError("give the rule's match and target only, without %s" % words[0], obj=field)
        return words
    if not isinstance(rule, dict):
        raise NetnsError("a rule is a string in iptables syntax or a mapping, not %s" % type(rule).__name__, obj=field)
    unknown = set(rule) - STRUCTURED_KEYS
    if unknown:
        raise NetnsError("unknown rule key(s) %s; allowed: %s" % (", ".join(sorted(unknown)),
                                                                  ", ".join(sorted(STRUCTURED_KEYS))), obj=field)
    words: List[str] = []
    for key, option in _STRUCTURED:
        if rule.get(key) is not None:
            words += [option, str(rule[key])]
    if rule.get("icmp_type") is not None:
        words += ["--icmp-type" if ip_version == "ipv4" else "--icmpv6-type", str(rule["icmp_type"])]
    for extra in rule.get("match") or []:
        words += shlex.split(extra) if isinstance(extra, str) else [str(extra)]
    if rule.get("ctstate"):
        states = rule["ctstate"]
        words += ["-m", "conntrack", "--ctstate", ",".join(states) if isinstance(states, list) else str(states)]
    if rule.get("comment") is not None:
        words += ["-m", "comment", "--comment", str(rule["comment"])]
    if rule.get("jump"):
        words += ["-j", str(rule["jump"])]
    if rule.get("goto"):
        words += ["-g", str(rule["goto"])]
    for key, option in _TARGET_OPTIONS:
        if rule.get(key) is not None:
            words += [option, str(rule[key])]
    if not words:
        raise NetnsError("empty rule", obj=field)
    return words


def rule_text(words: List[str]) -> str:
    """Words joined the way iptables-restore reads them (it knows double quotes only)."""
    return " ".join(_quote(w) for w in words)


def _quote(word: str) -> str:
    if word and not any(ch.isspace() or ch in "\"'\\" for ch in word):
        return word
    return '"%s"' % word.replace("\\", "\\\\").replace('"', '\\"')


# -- planning chain contents ----------------------------------------------------------------
def merge_rules(current: List[str], declared: List[str], exclusive: bool) -> List[str]:
    """The chain's rules after declaring ``declared`` (canonical texts) in order.

    Exclusive: exactly ``declared``. Otherwise rules nobody declared keep their places; declared rules
    already present in the right relative order stay put and missing ones go right after the previous
    declared rule (before the next one, or at the end); if the order is wrong, the declared block is
    written where its first rule stood."""
    if exclusive:
        return list(declared)
    positions = [current.index(rule) for rule in declared if rule in current]
    if positions != sorted(positions):
        first = min(positions)
        kept = [rule for rule in current if rule not in declared]
        at = len([rule for rule in current[:first] if rule not in declared])
        return kept[:at] + list(declared) + kept[at:]
    result = list(current)
    previous: Optional[int] = None
    for rule in declared:
        if rule in result:
            previous = result.index(rule)
            continue
        following = [result.index(r) for r in declared[declared.index(rule) + 1:] if r in result]
        at = previous + 1 if previous is not None else (following[0] if following else len(result))
        result.insert(at, rule)
        previous = at
    return result


def references(table: Table, chain: str) -> List[str]:
    """Rules of ``table`` that jump or go to ``chain``."""
    found = []
    for other in table.chains.values():
        for _, text in other.rules:
            words = shlex.split(text)
            if any(words[i] in ("-j", "-g", "--jump", "--goto") and words[i + 1] == chain
                   for i in range(len(words) - 1)):
                found.append("%s: %s" % (other.name, text))
    return found
