# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iptables tables as a topology's last run read or wrote them, kept in its state directory, so
that a run need not start iptables-save in a namespace whose ruleset has not changed since.

Under the nf_tables backend every change to a namespace's ruleset, by any tool and in any table or
family, is a commit that advances that namespace's generation id, which one netlink request reads.
A namespace is told apart by its cookie (never reused before the next boot, unlike its inode) and
the boot id. A remembered content is used only when cookie and generation are exactly the ones it
was recorded with. It is recorded with the generation read before iptables-save started, or the one
after this run's own restore (one commit: the one before plus one); if another commit came in
between, the kernel has moved past that generation and never reports it again, so such a record
is simply never used. Rule counters move with traffic, not with commits: a remembered table serves
comparisons only, and is read afresh before it is restored.

The legacy backend has no generation, nor do kernels before 5.14 a cookie: there, every run reads.

The same file keeps the canonical form iptables gave each declared rule (see iptables.canonicalise),
with the identity of the iptables-save and iptables-restore binaries that gave it: the next run
starts no canonicalisation for rules it already knows while those binaries are unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ..errors import NetnsError
from ..kernel import programs
from ..kernel.session import Kernel
from ..system import procfs, trusted_files
from ..validation import check_netns_name
from .iptables_rules import Chain, Table

FORMAT_VERSION = 1
Generation = Tuple[int, int]  # (namespace cookie, nftables generation id)
Tables = Dict[str, Table]
RuleKey = Tuple[str, str, str]  # (table, chain, rule as declared)
Canonical = Dict[str, Dict[str, Any]]  # family -> {"tools": identities, "rules": {RuleKey: canonical form}}


class Entry:
    """What one namespace's tables were, by family (the iptables-save tool), at one generation."""

    def __init__(self, generation: Generation, tables: Optional[Dict[str, Tables]] = None,
                 old_counters: Optional[Set[str]] = None) -> None:
        self.generation = generation
        self.tables: Dict[str, Tables] = tables if tables is not None else {}
        self.old_counters: Set[str] = old_counters if old_counters is not None else set()  # families from a file


class Snapshot:
    """The remembered tables of one topology, for one run (see the module's description)."""

    def __init__(self, path: str, boot_id: str, tools: Dict[str, List[Any]], entries: Dict[Optional[str], Entry],
                 loaded: str = "", canonical: Optional[Canonical] = None) -> None:
        self.path = path
        self._boot_id = boot_id
        self._tools = tools  # iptables-save binary -> its identity, when known to be the nf_tables one
        self._loaded = loaded  # the file's text: a run that learns nothing new leaves it as it is
        self._entries = entries
        self._touched: Set[Optional[str]] = set()  # namespaces this run read, wrote or compared
        self._before_restore: Dict[Optional[str], Optional[Generation]] = {}
        self._identities: Dict[str, List[Any]] = {}
        self._canonical_known: Canonical = canonical if canonical is not None else {}
        self._canonical_used: Canonical = {}  # what this run's rules needed: the next file keeps only that

    # -- reading ---------------------------------------------------------------------------
    def generation(self, kernel: Kernel, ns: Optional[str]) -> Optional[Generation]:
        """``ns``'s generation now: ask before reading its tables, then ``tables`` or ``read``."""
        self._touched.add(ns)
        return kernel.generation(ns)

    def tables(self, ns: Optional[str], tool: str, generation: Optional[Generation]) -> Optional[Tables]:
        """Copies of ``ns``'s tables of one family if they are known at ``generation``."""
        entry = self._entries.get(ns)
        if generation is None or entry is None or entry.generation != generation or tool not in entry.tables:
            return None
        if not self._trusted(tool):
            return None
        return {name: table.copy() for name, table in entry.tables[tool].items()}

    def read(self, ns: Optional[str], tool: str, generation: Optional[Generation], tables: Tables) -> None:
        """What iptables-save printed, started at ``generation``."""
        if generation is None or _partly_unseen(tables):
            self._entries.pop(ns, None)
            return
        entry = self._entries.get(ns)
        if entry is None or entry.generation != generation:
            entry = self._entries[ns] = Entry(generation)
        entry.tables[tool] = {name: table.copy() for name, table in tables.items()}
        entry.old_counters.discard(tool)

    def remembered(self, ns: Optional[str], tool: str) -> bool:
        """Whether the tables of ``ns`` this run holds came from an earlier run (with old counters)."""
        entry = self._entries.get(ns)
        return entry is not None and tool in entry.old_counters

    def canonical_forms(self, family: str, tools: Sequence[str]) -> Dict[RuleKey, str]:
        """Rules of one family as iptables wrote them back in an earlier run, if the binaries
        ``tools`` (save, restore) are the ones that did."""
        known = self._canonical_known.get(family)
        if known is None or known["tools"] != [self._identity(tool) for tool in tools]:
            return {}
        return dict(known["rules"])

    def canonicalised(self, family: str, tools: Sequence[str], forms: Dict[RuleKey, str]) -> None:
        """Canonical forms of rules this run declares, for the next run."""
        identities = [self._identity(tool) for tool in tools]
        if [] in identities:
            return
        used = self._canonical_used.setdefault(family, {"tools": identities, "rules": {}})
        used["rules"].update(forms)

    # -- writing ---------------------------------------------------------------------------
    def restoring(self, kernel: Kernel, ns: Optional[str]) -> None:
        """Call before a restore in ``ns`` (never two at once in one namespace)."""
        self._touched.add(ns)
        generation = self._before_restore[ns] = kernel.generation(ns)
        entry = self._entries.get(ns)
        if generation is not None and ns in kernel.created and (entry is None or entry.generation != generation):
            # The engine's rule for namespaces it created: no tables until this run writes them.
            self._entries[ns] = Entry(generation)

    def restored(self, ns: Optional[str], tool: str, tables: Tables) -> None:
        """``ns``'s tables of one family after this run's restore: one commit after ``restoring``."""
        before = self._before_restore.pop(ns, None)
        entry = self._entries.get(ns)
        if before is None or entry is None or entry.generation != before or _partly_unseen(tables):
            self._entries.pop(ns, None)  # not known what the other tables were when it started
            return
        entry.generation = (before[0], before[1] % 0xFFFFFFFF + 1)  # the kernel skips 0
        entry.tables[tool] = {name: table.copy() for name, table in tables.items()}
        entry.old_counters.discard(tool)

    def save(self, kernel: Kernel) -> None:
        """Keep what this run knows of the namespaces it looked at and that are still there, if it
        differs from what was loaded; families whose iptables is not the nf_tables one are left out."""
        known = {ns: self._entries[ns] for ns in self._touched if ns in self._entries and kernel.exists(ns)}
        for tool in {tool for entry in known.values() for tool in entry.tables}:
            if not self._trusted(tool) and _is_nf_tables(tool):
                self._tools[tool] = self._identity(tool)
        kept = {ns: Entry(entry.generation, {t: v for t, v in entry.tables.items() if self._trusted(t)})
                for ns, entry in known.items()}
        text = _serialise(self._boot_id, self._tools, {ns: entry for ns, entry in kept.items() if entry.tables},
                          self._canonical_used)
        if text != self._loaded:
            trusted_files.write_file_atomically(self.path, text, 0o600, directory_mode=0o700)

    def _trusted(self, tool: str) -> bool:
        return self._tools.get(tool) == self._identity(tool) != []

    def _identity(self, tool: str) -> List[Any]:
        if tool not in self._identities:
            self._identities[tool] = _identity(tool)
        return self._identities[tool]


def snapshot_path(name: str, state_dir: str) -> str:
    return os.path.join(state_dir, "%s.tables.json" % name)


def load(path: str) -> Snapshot:
    """The snapshot at ``path``: an empty one when there is none, or it holds anything but what this
    version writes (garbage, another shape, another boot), as a cache. NetnsError naming the file or
    its directory when someone other than root could have written it: its tables are never used."""
    boot_id = procfs.boot_id()
    data = trusted_files.read_trusted_bytes(path)
    if data is None:
        return Snapshot(path, boot_id, {}, {})
    try:
        text = data.decode("utf-8")
        tools, entries, canonical = _from_json(json.loads(text), boot_id)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
        return Snapshot(path, boot_id, {}, {})
    return Snapshot(path, boot_id, tools, entries, loaded=text, canonical=canonical)


def remove(path: str) -> None:
    trusted_files.remove_file(path)


# -- helpers ------------------------------------------------------------------------------------
def _partly_unseen(tables: Tables) -> bool:
    """Whether iptables-save left something out of these tables (nft-made): the file does not keep
    that note, so such tables are read every time rather than remembered without it."""
    return any(table.unseen is not None for table in tables.values())


def _identity(tool: str) -> List[Any]:
    """Which binary ``tool`` is here (a switch of backend or an upgrade changes it)."""
    path = shutil.which(tool)
    if path is None:
        return []
    real = os.path.realpath(path)
    try:
        status = os.stat(real)
    except OSError:
        return []
    return [path, real, status.st_size, status.st_mtime_ns]


def _is_nf_tables(tool: str) -> bool:
    try:
        proc = programs.completed([tool, "--version"])
    except OSError:
        return False
    return proc.returncode == 0 and "nf_tables" in proc.stdout


def _ns_key(ns: Optional[str]) -> str:
    return "" if ns is None else "netns " + ns


def _serialise(boot_id: str, tools: Dict[str, List[Any]], entries: Dict[Optional[str], Entry],
               canonical: Canonical) -> str:
    namespaces = {_ns_key(ns): {"generation": list(entry.generation),
                                "tables": {tool: _tables_to_json(tables) for tool, tables in sorted(entry.tables.items())}}
                  for ns, entry in entries.items()}
    rules = {family: {"tools": value["tools"], "rules": sorted([*key, form] for key, form in value["rules"].items())}
             for family, value in canonical.items()}
    return json.dumps({"version": FORMAT_VERSION, "boot_id": boot_id, "tools": tools, "namespaces": namespaces,
                       "canonical": rules}, sort_keys=True) + "\n"


def _tables_to_json(tables: Tables) -> Dict[str, List[Any]]:
    return {name: [[c.name, c.policy, [text for _counters, text in c.rules]] for c in table.chains.values()]
            for name, table in tables.items()}


class _Shape(ValueError):
    """The file holds something this version does not write: ignored, like a missing file."""


def _expect(condition: bool) -> None:
    if not condition:
        raise _Shape()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _from_json(data: Any, boot_id: str) -> Tuple[Dict[str, List[Any]], Dict[Optional[str], Entry], Canonical]:
    """(tools, entries, canonical forms) of a file's JSON, each checked whole; _Shape otherwise."""
    _expect(isinstance(data, dict) and _is_int(data.get("version")) and data["version"] == FORMAT_VERSION)
    _expect(data.get("boot_id") == boot_id and isinstance(data.get("tools"), dict)
            and isinstance(data.get("namespaces"), dict))
    tools = {tool: _identity_from_json(identity) for tool, identity in data["tools"].items()}
    entries = {_ns_from_key(key): _entry_from_json(value) for key, value in data["namespaces"].items()}
    canonical = data.get("canonical", {})
    _expect(isinstance(canonical, dict))
    return tools, entries, {family: _canonical_from_json(value) for family, value in canonical.items()}


def _identity_from_json(value: Any) -> List[Any]:
    _expect(isinstance(value, list) and all(isinstance(item, str) or _is_int(item) for item in value))
    return value


def _ns_from_key(key: str) -> Optional[str]:
    if key == "":
        return None
    _expect(key.startswith("netns "))
    try:
        return check_netns_name(key[len("netns "):])
    except NetnsError:
        raise _Shape() from None


def _entry_from_json(value: Any) -> Entry:
    _expect(isinstance(value, dict) and isinstance(value.get("tables"), dict))
    generation = value.get("generation")
    _expect(isinstance(generation, list) and len(generation) == 2 and all(_is_int(n) for n in generation))
    tables = {tool: _tables_from_json(by_name) for tool, by_name in value["tables"].items()}
    return Entry((generation[0], generation[1]), tables, old_counters=set(tables))


def _tables_from_json(data: Any) -> Tables:
    # Counters are not kept: a remembered table is read afresh before it is restored.
    _expect(isinstance(data, dict))
    tables = {}
    for name, chains in data.items():
        _expect(isinstance(chains, list))
        tables[name] = Table(name, {})
        for chain in chains:
            _expect(isinstance(chain, list) and len(chain) == 3 and isinstance(chain[0], str)
                    and (chain[1] is None or isinstance(chain[1], str)) and _is_strings(chain[2]))
            tables[name].chains[chain[0]] = Chain(chain[0], chain[1], rules=[("[0:0]", text) for text in chain[2]])
    return tables


def _canonical_from_json(value: Any) -> Dict[str, Any]:
    _expect(isinstance(value, dict) and isinstance(value.get("tools"), list) and isinstance(value.get("rules"), list))
    tools = [_identity_from_json(identity) for identity in value["tools"]]
    rules = {}
    for rule in value["rules"]:
        _expect(_is_strings(rule) and len(rule) == 4)
        rules[(rule[0], rule[1], rule[2])] = rule[3]
    return {"tools": tools, "rules": rules}
