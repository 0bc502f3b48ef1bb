# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure iptables text handling: parse iptables-save, plan chain contents, render iptables-restore."""

from __future__ import annotations

import dataclasses
import difflib
import re
import shlex
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import NetnsError

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
        return [text for _counters, text in self.rules]


@dataclasses.dataclass
class Table:
    name: str
    chains: Dict[str, Chain]
    # What iptables-save says it leaves out of this table (chains or rules made with nft that
    # iptables cannot show), None when it shows it whole.
    unseen: Optional[str] = None

    def copy(self) -> "Table":
        return Table(self.name, {n: Chain(c.name, c.policy, c.counters, list(c.rules)) for n, c in self.chains.items()},
                     self.unseen)


def empty_table(name: str) -> Table:
    """A table as a new namespace has it: built-in chains, ACCEPT, no rules."""
    return Table(name, {chain: Chain(chain, "ACCEPT") for chain in BUILTIN_CHAINS[name]})


def parse_save(text: str, origin: str = "iptables-save") -> Dict[str, Table]:
    """``iptables-save -c`` output -> tables by name; errors name ``origin`` (tool and namespace)."""
    tables: Dict[str, Table] = {}
    unseen: Dict[str, str] = {}
    current: Optional[Table] = None
    for line in _save_lines(text):
        if not line or line.startswith("#"):
            found = _UNSEEN.match(line)
            if found:
                unseen[found.group(1)] = line[2:]
            continue
        if line.startswith("*"):
            current = Table(line[1:].strip(), {})
            tables[current.name] = current
        elif line == "COMMIT":
            current = None
        elif current is None:
            raise NetnsError("unexpected line outside a table: %r" % line, obj=origin)
        elif line.startswith(":"):
            name, policy, counters = (line[1:].split(" ") + ["", ""])[:3]
            current.chains[name] = Chain(name, None if policy == "-" else policy, counters or ZERO)
        else:
            found = _RULE_LINE.fullmatch(line)
            if found is None or found.group(2) not in current.chains:
                raise NetnsError("cannot read line %r" % line, obj=origin)
            counters, chain, rest = found.groups()
            current.chains[chain].rules.append((counters or ZERO, rest or ""))
    for name, note in unseen.items():
        tables.setdefault(name, Table(name, {})).unseen = note  # "is incompatible": not printed at all
    return tables


# A rule as iptables-save -c prints it; its text may span lines (see _save_lines).
_RULE_LINE = re.compile(r"(?:(\[\d+:\d+\]) )?-A (\S+)(?: (.*))?", re.DOTALL)
_UNSEEN = re.compile(r"# Table `(\w+)' (?:is incompatible|contains incompatible base-chains)")
_LINE_START = re.compile(r"$|[#*:]|COMMIT$|(\[\d+:\d+\] )?-A ")


def _save_lines(text: str) -> Iterator[str]:
    """iptables-save's lines, a rule's continuation lines joined to it: iptables-save prints the
    strings it quotes (comments) and interface names as they are, line breaks included. A rule
    goes on while a quoted string in it is open, or while the next line starts none of the
    lines iptables-save prints; a quote still open at the end of the output was none (an
    interface name may begin with one)."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        rule, index = lines[index], index + 1
        if not _RULE_LINE.fullmatch(rule):
            yield rule
            continue
        joined, end = _continued(rule, lines, index, quotes=True)
        if _quote_open(joined):
            joined, end = _continued(rule, lines, index, quotes=False)
        yield joined
        index = end


def _continued(rule: str, lines: List[str], index: int, quotes: bool) -> Tuple[str, int]:
    """``rule`` with the lines from ``index`` on that continue it, and the index after them."""
    while index < len(lines) and ((quotes and _quote_open(rule)) or not _LINE_START.match(lines[index])):
        rule += "\n" + lines[index]
        index += 1
    return rule, index


def _quote_open(text: str) -> bool:
    """Whether ``text`` ends inside a string quoted as iptables-save quotes."""
    return '"' in text and save_words(text)[1]


class _QuotedString:
    """The inside of a double-quoted string as iptables-save writes it and iptables-restore reads it:
    a backslash makes the next character literal, a double quote ends the string."""

    def __init__(self) -> None:
        self.escaped = False

    def take(self, char: str, word: List[str]) -> bool:
        """Add ``char`` to ``word``, unless it quotes or ends; True for the closing quote."""
        if self.escaped:
            word.append(char)
            self.escaped = False
        elif char == "\\":
            self.escaped = True
        elif char == '"':
            return True
        else:
            word.append(char)
        return False


def save_words(text: str) -> Tuple[List[str], bool]:
    """``text`` split into words as iptables-save meant them, and whether a quoted string is still
    open at its end. iptables-save quotes a string that needs it in double quotes at the start of a
    word, a backslash before each double quote, single quote and backslash in it; names it prints
    as they are (interfaces, chains) may hold a double quote in the middle of a word."""
    words: List[str] = []
    word: List[str] = []
    inside = _QuotedString()
    quoted = in_word = False
    for char in text:
        if quoted:
            quoted = not inside.take(char, word)
        elif char in " \t\n":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif char == '"' and not in_word:
            quoted = in_word = True
        else:
            word.append(char)
            in_word = True
    if in_word:
        words.append("".join(word))
    return words, quoted


def _restore_words(text: str) -> Tuple[List[str], bool]:
    """``text`` split into words as iptables-restore splits a rule line, and whether that reading
    is the one iptables-save meant: every quote opens at the start of a word and closes at its end
    (an unquoted name that holds a quote, e.g. an interface, reads otherwise)."""
    words: List[str] = []
    word: List[str] = []
    inside = _QuotedString()
    quoted = False
    clean = True
    for index, char in enumerate(text):
        if quoted:
            if inside.take(char, word):
                quoted = False
                words.append("".join(word))  # iptables-restore ends the word at the closing quote
                word = []
                clean = clean and text[index + 1:index + 2] in ("", " ", "\t")
        elif char == '"':
            clean = clean and not word
            quoted = True
        elif char in " \t\n":
            if word:
                words.append("".join(word))
                word = []
        else:
            word.append(char)
    if word:
        words.append("".join(word))
    return words, clean and not quoted


def restorable(chain: str, text: str) -> bool:
    """Whether iptables-restore reads rule ``text`` of ``chain``, as iptables-save printed it, back
    as the same rule: it reads one line per rule, and only quotes at the start of words."""
    return "\n" not in text and _restore_words("-A %s %s" % (chain, text))[1]


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


def restore_input(current: Table, wanted: Table) -> Tuple[List[str], str]:
    """iptables-restore's options and input that turn ``current`` into ``wanted`` in one transaction:
    the whole table when iptables-restore can read back every rule of ``current`` and iptables-save
    showed all of it; otherwise only the changes (--noflush), so that what iptables-restore cannot
    write, or iptables cannot show, stays as it is. A table iptables does not show is not written."""
    if current.unseen is not None and not current.chains:
        raise NetnsError("iptables does not show this table (iptables-save: %s); it is left as it is" % current.unseen)
    if current.unseen is None and all(restorable(chain.name, text)
                                      for chain in current.chains.values() for text in chain.texts()):
        return [], render_restore(wanted)
    return ["--noflush"], render_edits(current, wanted)


def render_edits(current: Table, wanted: Table) -> str:
    """iptables-restore --noflush input that changes ``current`` into ``wanted`` and leaves alone
    what stays: new chains and changed policies, the rules of each changed chain, chains that go."""
    lines = ["*" + wanted.name]
    for chain in wanted.chains.values():
        have = current.chains.get(chain.name)
        if have is None or (chain.policy is not None and chain.policy != have.policy):
            lines.append(":%s %s %s" % (chain.name, chain.policy or "-", chain.counters))
    for chain in wanted.chains.values():
        have = current.chains.get(chain.name)
        lines += _chain_edits(chain.name, have.rules if have is not None else [], chain.rules)
    gone = [name for name in current.chains if name not in wanted.chains]
    lines += ["-F " + name for name in gone] + ["-X " + name for name in gone]
    return "\n".join(lines + ["COMMIT", ""])


def _chain_edits(chain: str, have: List[Tuple[str, str]], want: List[Tuple[str, str]]) -> List[str]:
    """Restore lines that turn the rules ``have`` of ``chain`` into ``want``: the chain written anew
    when iptables-restore can read every rule it keeps, else deletions and insertions by number
    around the rules that stay, from the end of the chain so that each leaves the next's numbers."""
    if [text for _counters, text in have] == [text for _counters, text in want]:
        return []
    if all(restorable(chain, text) for _counters, text in want):
        return (["-F " + chain] if have else []) + ["%s -A %s %s" % (counters, chain, text) for counters, text in want]
    lines: List[str] = []
    length = len(have)
    matcher = difflib.SequenceMatcher(None, [text for _counters, text in have], [text for _counters, text in want], autojunk=False)
    for tag, first, end, new_first, new_end in reversed(matcher.get_opcodes()):
        if tag == "equal":
            continue
        lines += ["-D %s %d" % (chain, number) for number in range(end, first, -1)]
        length -= end - first
        for offset, (counters, text) in enumerate(want[new_first:new_end]):
            if not restorable(chain, text):
                raise NetnsError("cannot move rule %r of chain %s: iptables-restore cannot read it back "
                                 "(iptables-save prints it across lines or with a bare quote)" % (text, chain))
            at = first + offset
            lines.append("%s -A %s %s" % (counters, chain, text) if at == length
                         else "%s -I %s %d %s" % (counters, chain, at + 1, text))
            length += 1
    return lines


# -- rules as the user writes them ---------------------------------------------------------
_STRUCTURED = (  # key, option(s); order is irrelevant: iptables itself canonicalises
    ("source", "-s"), ("destination", "-d"), ("in_interface", "-i"), ("out_interface", "-o"),
    ("protocol", "-p"), ("source_port", "--sport"), ("destination_port", "--dport"),
)
_TARGET_OPTIONS = (("to_destination", "--to-destination"), ("to_source", "--to-source"), ("to_ports", "--to-ports"))
STRUCTURED_KEYS = {key for key, _option in _STRUCTURED + _TARGET_OPTIONS} | {"ctstate", "icmp_type", "comment", "jump",
                                                                             "goto", "match"}


def rule_words(rule: Any, ip_version: str, field: str) -> List[str]:
    """A rule given as iptables syntax (``-p tcp --dport 22 -j ACCEPT``) or structured -> words."""
    words = _given_words(rule, ip_version, field)
    _check_words(words, ip_version, field)
    return words


def _given_words(rule: Any, ip_version: str, field: str) -> List[str]:
    if isinstance(rule, str):
        words = _split(rule, field)
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
        words += _split(extra, field) if isinstance(extra, str) else [str(extra)]
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


def _split(text: str, field: str) -> List[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise NetnsError("cannot split rule %r: %s" % (text, exc), obj=field) from None


# iptables' own short options that take an argument (getopt reads the rest of a cluster, or the
# next word, as it): in "-ph" the h is a protocol, in "-vh" a request for help.
_ARGUMENT_LETTERS = set("ACDEFILMNPRSWXZcdghijmopstw")
# Options whose argument is free text (the next word, whatever it looks like).
_TEXT_OPTIONS = {"--comment", "--log-prefix", "--nflog-prefix", "--string", "--hex-string", "--helper"}
_OTHER_FAMILY = {"ipv4": ("6", "--ipv6"), "ipv6": ("4", "--ipv4")}


def _check_words(words: List[str], ip_version: str, field: str) -> None:
    """Refuse words iptables-restore cannot read, and words that make iptables print its help or
    version, or skip the rule, instead of taking it (iptables-restore then exits 0 having done nothing)."""
    for index, word in enumerate(words):
        _check_text(word, field)
        if index and words[index - 1] in _TEXT_OPTIONS:
            continue
        refused = _help_or_version(word) or _other_family(word, ip_version)
        if refused:
            raise NetnsError("%r makes iptables %s instead of taking the rule" % (word, refused), obj=field)


def _check_text(word: str, field: str) -> None:
    if "\n" in word or "\r" in word:
        raise NetnsError("a rule cannot hold a line break (iptables-restore reads one rule per line): %r" % word,
                         obj=field)
    if "\x00" in word:
        raise NetnsError("a rule cannot hold a NUL character: %r" % word, obj=field)
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        raise NetnsError("a rule must be valid UTF-8 text: %r" % word, obj=field) from None


def _help_or_version(word: str) -> Optional[str]:
    if word.startswith("--"):
        name = word[2:].split("=", 1)[0]
        if name and "help".startswith(name):
            return "print its help"
        if len(name) >= 4 and "version".startswith(name):  # --v, --ve, --ver may be --verbose
            return "print its version"
        return None
    return {"h": "print its help", "V": "print its version", None: None}[_short_option(word, "hV")]


def _other_family(word: str, ip_version: str) -> Optional[str]:
    letter, long_option = _OTHER_FAMILY[ip_version]
    if word == long_option or _short_option(word, letter):
        return "skip the rule (%s is for %s)" % (word, "IPv6" if ip_version == "ipv4" else "IPv4")
    return None


def _short_option(word: str, letters: str) -> Optional[str]:
    """The first of ``letters`` in ``word`` read as a cluster of short options (``-vh``), up to the
    first option that takes the rest as its argument; None if there is none."""
    if not word.startswith("-") or word.startswith("--"):
        return None
    for letter in word[1:]:
        if letter in letters:
            return letter
        if letter in _ARGUMENT_LETTERS:
            return None
    return None


def declared_text(saved: str) -> str:
    """A rule as iptables-save printed it, written so that a topology declaring it means the same
    words: declared rules are split as a shell splits, and iptables-save writes \\' inside quotes."""
    words = save_words(saved)[0]
    try:
        if shlex.split(saved) == words:
            return saved
    except ValueError:
        pass
    return rule_text(words)


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
    """Rules of ``table`` that jump or go to ``chain`` (their words read as iptables-save meant them)."""
    found = []
    for other in table.chains.values():
        for _counters, text in other.rules:
            words = save_words(text)[0]
            if any(words[i] in ("-j", "-g", "--jump", "--goto") and words[i + 1] == chain
                   for i in range(len(words) - 1)):
                found.append("%s: %s" % (other.name, text))
    return found
