# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iptables rules, chains and policies inside a namespace, one table at a time, atomically.

Declared rules are canonicalised by iptables itself (restored into a throw-away anonymous
namespace and saved back), so ``-p tcp --dport 22`` compares equal to the saved
``-p tcp -m tcp --dport 22``, and an invalid rule is refused before anything changes. A table is
changed with one iptables-restore of its whole new content (counters kept): never half-applied.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from typing import Any, Dict, List, Optional, Tuple

from ..errors import NetnsError
from ..kernel import programs
from ..kernel.session import Kernel
from ..kernel.transport import ns_label
from ..model import Change, Done, Kind, Params, Pending, Undo, params_of
from ..system import thread_netns
from ..validation import check_optional_netns
from .iptables_rules import (
    BUILTIN_CHAINS,
    POLICIES,
    Chain,
    Table,
    empty_table,
    merge_rules,
    parse_save,
    references,
    restorable,
    restore_input,
    rule_text,
    rule_words,
)
from .iptables_snapshot import Snapshot

TOOLS = {"ipv4": ("iptables-save", "iptables-restore"), "ipv6": ("ip6tables-save", "ip6tables-restore")}
CHAIN_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,28}")
# (ip_version, table, chain, user text) -> canonical text; iptables' canonical form never changes
# within one process, so one canonicalisation serves every later plan.
_CANONICAL: Dict[Tuple[str, str, str, str], str] = {}


@dataclasses.dataclass(frozen=True)
class ChainSpec:
    name: str
    policy: Optional[str]
    rules: Tuple[str, ...]  # user text, normalised word-quoting
    exclusive: bool
    field: str


@dataclasses.dataclass(frozen=True)
class IptablesSpec:
    netns: Optional[str]
    ip_version: str
    table: str
    chains: Tuple[ChainSpec, ...]
    state: str = "present"

    def is_builtin(self, chain: str) -> bool:
        return chain in BUILTIN_CHAINS[self.table]

    def canonical(self, chain: ChainSpec) -> List[str]:
        return [_CANONICAL[(self.ip_version, self.table, chain.name, rule)] for rule in chain.rules]


def iptables_spec(netns: Optional[str], ip_version: str, table: str, chains: Any, state: str = "present",
                  field: str = "iptables") -> IptablesSpec:
    """Validate raw input into a spec; raises NetnsError naming the field."""
    check_optional_netns(netns, "netns")
    if ip_version not in TOOLS:
        raise NetnsError("ip_version must be ipv4 or ipv6, not %r" % (ip_version,), obj=field + ".ip_version")
    if table not in BUILTIN_CHAINS:
        raise NetnsError("table must be one of %s, not %r" % (", ".join(BUILTIN_CHAINS), table), obj=field + ".table")
    if state not in ("present", "absent"):
        raise NetnsError("state must be 'present' or 'absent', not %r" % (state,), obj=field + ".state")
    if not isinstance(chains, (list, tuple)) or not chains:
        raise NetnsError("must be a non-empty list of chains", obj=field + ".chains")
    parsed = [_chain_spec(chain, ip_version, table, "%s.chains[%d]" % (field, i)) for i, chain in enumerate(chains)]
    names = [c.name for c in parsed]
    if len(set(names)) != len(names):
        raise NetnsError("a chain is listed twice", obj=field + ".chains")
    return IptablesSpec(netns or None, ip_version, table, tuple(parsed), state)


def _chain_spec(raw: Any, ip_version: str, table: str, field: str) -> ChainSpec:
    if not isinstance(raw, dict):
        raise NetnsError("a chain is a mapping with name, policy, rules, exclusive", obj=field)
    unknown = set(raw) - {"name", "policy", "rules", "exclusive"}
    if unknown:
        raise NetnsError("unknown key(s) %s" % ", ".join(sorted(unknown)), obj=field)
    name = raw.get("name")
    if not isinstance(name, str) or not CHAIN_NAME.fullmatch(name):
        raise NetnsError("chain name %r is not valid (1..28 of A-Z a-z 0-9 _ . -)" % (name,), obj=field + ".name")
    policy = raw.get("policy")
    if policy is not None:
        if name not in BUILTIN_CHAINS[table]:
            raise NetnsError("a policy is only for built-in chains (%s), not %s"
                             % (", ".join(BUILTIN_CHAINS[table]), name), obj=field + ".policy")
        if policy not in POLICIES:
            raise NetnsError("policy must be ACCEPT or DROP, not %r" % (policy,), obj=field + ".policy")
    rules = raw.get("rules") or []
    if not isinstance(rules, list):
        raise NetnsError("rules must be a list", obj=field + ".rules")
    texts = tuple(rule_text(rule_words(rule, ip_version, "%s.rules[%d]" % (field, i))) for i, rule in enumerate(rules))
    exclusive = raw.get("exclusive", False)
    if not isinstance(exclusive, bool):
        raise NetnsError("exclusive must be true or false", obj=field + ".exclusive")
    return ChainSpec(name, policy, texts, exclusive, field)


# -- canonical forms -------------------------------------------------------------------------
def canonicalise(specs: List[IptablesSpec], snapshot: Optional[Snapshot] = None) -> None:
    """Let iptables canonicalise every declared rule of ``specs``: one restore and one save per
    (ip_version, table) in a throw-away namespace. Invalid rules fail here, before any change.
    A topology's rules canonicalised by an earlier run with the same iptables binaries (its tables
    snapshot keeps them) are not done again: the form is a property of the binary."""
    families = sorted({spec.ip_version for spec in specs})
    if snapshot is not None:
        for family in families:
            for (table, chain, rule), form in snapshot.canonical_forms(family, TOOLS[family]).items():
                _CANONICAL.setdefault((family, table, chain, rule), form)
    groups: Dict[Tuple[str, str], List[Tuple[ChainSpec, str]]] = {}
    user_chains: Dict[Tuple[str, str], set] = {}
    for spec in specs:
        group = (spec.ip_version, spec.table)
        for chain in spec.chains:
            if not spec.is_builtin(chain.name):
                user_chains.setdefault(group, set()).add(chain.name)
            for rule in chain.rules:
                if (spec.ip_version, spec.table, chain.name, rule) not in _CANONICAL:
                    groups.setdefault(group, [])
                    if (chain, rule) not in groups[group]:
                        groups[group].append((chain, rule))
    if groups:
        with thread_netns.scratch_namespace():
            for (ip_version, table), rules in groups.items():
                _canonicalise_group(ip_version, table, rules, user_chains.get((ip_version, table), set()))
    if snapshot is not None:
        for family in families:
            snapshot.canonicalised(family, TOOLS[family], {
                (spec.table, chain.name, rule): _CANONICAL[(family, spec.table, chain.name, rule)]
                for spec in specs if spec.ip_version == family for chain in spec.chains for rule in chain.rules})


def _canonicalise_group(ip_version: str, table: str, rules: List[Tuple[ChainSpec, str]], user_chains: set) -> None:
    save, restore = TOOLS[ip_version]
    chains = list(BUILTIN_CHAINS[table]) + sorted(user_chains)
    header = ["*" + table] + [":%s %s [0:0]" % (c, "ACCEPT" if c in BUILTIN_CHAINS[table] else "-") for c in chains]
    lines = header + ["-A %s %s" % (chain.name, rule) for chain, rule in rules]
    proc = _run_tool([restore], "\n".join(lines + ["COMMIT", ""]))
    if proc.returncode != 0:
        raise _invalid_rule(proc.stderr, lines, rules, len(chains) + 1)
    saved = _saved_rules(save, table)
    given: Dict[str, int] = {}
    for chain, _rule in rules:
        given[chain.name] = given.get(chain.name, 0) + 1
    if any(len(saved.get(name, [])) != count for name, count in given.items()):
        raise _rule_not_taken(save, restore, table, header, rules)
    seen: Dict[str, int] = {}
    for chain, rule in rules:
        position = seen.get(chain.name, 0)
        seen[chain.name] = position + 1
        form = saved[chain.name][position]
        if not restorable(chain.name, form):
            raise NetnsError("iptables prints rule %r as %r, which iptables-restore cannot read back" % (rule, form),
                             obj="%s.rules[%d]" % (chain.field, chain.rules.index(rule)))
        _CANONICAL[(ip_version, table, chain.name, rule)] = form


def _run_tool(argv: List[str], stdin: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
    """An iptables program in this thread's namespace (never a shell); a missing one is an error naming it."""
    try:
        return programs.completed(argv, stdin)
    except OSError as exc:
        raise NetnsError("cannot run %s" % argv[0], obj="iptables", errno=exc.errno) from None


def _saved_rules(save: str, table: str) -> Dict[str, List[str]]:
    """The rules of ``table`` in this thread's namespace, by chain."""
    proc = _run_tool([save, "-t", table])
    if proc.returncode != 0:
        raise NetnsError("%s -t %s exited with %d: %s" % (save, table, proc.returncode, proc.stderr.strip()),
                         obj="iptables")
    tables = parse_save(proc.stdout, "%s in a scratch namespace" % save)
    return {name: chain.texts() for name, chain in tables[table].chains.items()} if table in tables else {}


def _rule_not_taken(save: str, restore: str, table: str, header: List[str],
                    rules: List[Tuple[ChainSpec, str]]) -> NetnsError:
    """iptables-restore succeeded without taking every rule (a word made it print its help, or skip
    a rule): find the rule, restoring one at a time."""
    for chain, rule in rules:
        _run_tool([restore], "\n".join(header + ["COMMIT", ""]))  # empty: what a skipped rule leaves is told apart
        proc = _run_tool([restore], "\n".join(header + ["-A %s %s" % (chain.name, rule), "COMMIT", ""]))
        if proc.returncode == 0 and len(_saved_rules(save, table).get(chain.name, [])) != 1:
            printed = (proc.stdout.strip().splitlines() or [""])[0]
            told = "it printed %r" % printed if printed else "it skips it"
            return NetnsError("iptables does not take rule %r (%s)" % (rule, told),
                              obj="%s.rules[%d]" % (chain.field, chain.rules.index(rule)))
    return NetnsError("iptables-restore did not take every rule of table %s" % table, obj="iptables")


def _invalid_rule(stderr: str, lines: List[str], rules: List[Tuple[ChainSpec, str]], header: int) -> NetnsError:
    match = re.search(r"line:? (\d+)", stderr)
    message = stderr.strip().splitlines()[0] if stderr.strip() else "iptables-restore failed"
    if match and header < int(match.group(1)) <= header + len(rules):
        chain, rule = rules[int(match.group(1)) - header - 1]
        index = chain.rules.index(rule)
        return NetnsError("iptables refuses rule %r: %s" % (rule, message), obj="%s.rules[%d]" % (chain.field, index))
    return NetnsError("iptables refuses the rules: %s" % message, obj="iptables")


# -- reading -------------------------------------------------------------------------------
def read_tables(kernel: Kernel, ns: Optional[str], ip_version: str, snapshot: Optional[Snapshot] = None) -> Dict[str, Table]:
    """All tables of one family in ``ns``: one iptables-save (never -t, which would create the table);
    a ``snapshot`` learns what was read."""
    if not kernel.exists(ns):
        return {}
    save = TOOLS[ip_version][0]
    generation = snapshot.generation(kernel, ns) if snapshot else None
    tables = parse_save(kernel.programs.run(ns, [save, "-c"]), "%s in %s" % (save, ns_label(ns)))
    if snapshot:
        snapshot.read(ns, save, generation, tables)
    return tables


# iptables-save/-restore processes run at once (prefetch_tables, IptablesKind.apply_batch): on a machine with few
# cores most of a save is the child's own CPU work (exec, nf_tables dump), and most of a restore
# waiting for the kernel to commit it; both overlap well.
PARALLEL_PROCESSES = 8


def prefetch_tables(kernel: Kernel, wanted: List[Tuple[Optional[str], str]], snapshot: Optional[Snapshot] = None) -> None:
    """Read the tables of many (namespace, ip_version) pairs into the cache ``cached_tables`` reads
    from: those the run's snapshot knows at the namespace's current generation from there, the
    others with several iptables-save running at once (a whole topology would otherwise wait for
    one process after another)."""
    todo = [(ns, v) for ns, v in dict.fromkeys(wanted)
            if kernel.cache.peek(ns, "iptables-" + v) is None and kernel.exists(ns)]
    generations = {ns: snapshot.generation(kernel, ns) for ns, _ip_version in todo} if snapshot else {}
    unknown = []
    for ns, ip_version in todo:
        tables = snapshot.tables(ns, TOOLS[ip_version][0], generations[ns]) if snapshot else None
        if tables is None:
            unknown.append((ns, ip_version))
        else:
            kernel.cache.get(ns, "iptables-" + ip_version, lambda _n: tables)
    running: List[Tuple[Optional[str], str, Any]] = []
    for index, (ns, ip_version) in enumerate(unknown):
        running.append((ns, ip_version, kernel.programs.start(ns, [TOOLS[ip_version][0], "-c"])))
        if len(running) >= PARALLEL_PROCESSES or index == len(unknown) - 1:
            for done_ns, done_version, proc in running:
                save = TOOLS[done_version][0]
                output = kernel.programs.finish(done_ns, [save, "-c"], proc)
                tables = parse_save(output, "%s in %s" % (save, ns_label(done_ns)))
                if snapshot:
                    snapshot.read(done_ns, save, generations[done_ns], tables)
                kernel.cache.get(done_ns, "iptables-" + done_version, lambda _n: tables)
            running = []


def cached_tables(kernel: Kernel, ns: Optional[str], ip_version: str,
                  snapshot: Optional[Snapshot] = None) -> Dict[str, Table]:
    """The tables as last read or written; a namespace this run created has none yet (its built-in
    chains are empty with policy ACCEPT, which is what an absent table means here)."""
    return kernel.cache.get(ns, "iptables-" + ip_version,
                            lambda n: {} if n in kernel.created else read_tables(kernel, n, ip_version, snapshot))


def current_table(kernel: Kernel, ns: Optional[str], ip_version: str, table: str,
                  snapshot: Optional[Snapshot] = None) -> Table:
    tables = cached_tables(kernel, ns, ip_version, snapshot)
    return tables[table].copy() if table in tables else empty_table(table)


# -- planning ------------------------------------------------------------------------------
def plan_table(spec: IptablesSpec, current: Table) -> Optional[Table]:
    """Pure: the table after ``spec`` (None when nothing changes)."""
    wanted = current.copy()
    for chain in spec.chains:
        have = wanted.chains.get(chain.name)
        declared = spec.canonical(chain)
        if spec.state == "absent":
            if have is None:
                continue
            if chain.rules:
                have.rules = [r for r in have.rules if r[1] not in declared]
            elif not spec.is_builtin(chain.name):
                users = references(wanted, chain.name)
                if users:
                    raise NetnsError("chain %s is still referenced by %s" % (chain.name, "; ".join(users)),
                                     obj=chain.field)
                del wanted.chains[chain.name]
            continue
        if have is None:
            have = wanted.chains[chain.name] = Chain(chain.name, None)
        if chain.policy is not None:
            have.policy = chain.policy
        counters = dict((text, c) for c, text in reversed(have.rules))
        have.rules = [(counters.get(text, "[0:0]"), text) for text in merge_rules(have.texts(), declared, chain.exclusive)]
    return None if _same(wanted, current) else wanted


def _same(a: Table, b: Table) -> bool:
    return ([(c.name, c.policy, c.texts()) for c in a.chains.values()]
            == [(c.name, c.policy, c.texts()) for c in b.chains.values()])


def _chain_view(table: Table, names: List[str]) -> Dict[str, Any]:
    return {name: ({"policy": table.chains[name].policy, "rules": table.chains[name].texts()}
                   if name in table.chains else None) for name in names}


def iptables_key(spec: IptablesSpec) -> str:
    return "%s %s in %s" % (spec.ip_version, spec.table, ns_label(spec.netns))


def plan_iptables(kernel: Kernel, spec: IptablesSpec, pending: Pending, snapshot: Optional[Snapshot] = None) -> List[Change]:
    """``snapshot``: the topology's tables file, which knows tables and canonical forms of earlier runs."""
    if not kernel.exists(spec.netns):
        if spec.state == "absent":
            return []
        if not pending.has_namespace(spec.netns):
            raise NetnsError("namespace %s does not exist" % spec.netns, obj="iptables " + iptables_key(spec))
    canonicalise([spec], snapshot)
    current = current_table(kernel, spec.netns, spec.ip_version, spec.table, snapshot)
    wanted = plan_table(spec, current)
    if wanted is None:
        return []
    table_restore(spec, current, wanted)  # a table that cannot be written so fails before any change
    names = [c.name for c in spec.chains]
    return [Change("iptables", "update", iptables_key(spec), _chain_view(current, names), _chain_view(wanted, names),
                   params=TableParams(spec, snapshot))]


def table_restore(spec: IptablesSpec, current: Table, wanted: Table) -> Tuple[List[str], str]:
    """iptables-restore's options and input that turn ``current`` into ``wanted`` (see restore_input)."""
    try:
        return restore_input(current, wanted)
    except NetnsError as exc:
        raise NetnsError(exc.message, obj="iptables " + iptables_key(spec)) from None


def iptables_report(kernel: Kernel, spec: IptablesSpec) -> Dict[str, Any]:
    """The netns_iptables module's return value: the declared chains as they are now."""
    if not kernel.exists(spec.netns):
        return {"chains": {}}
    table = current_table(kernel, spec.netns, spec.ip_version, spec.table)
    return {"chains": _chain_view(table, [c.name for c in spec.chains])}


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TableParams(Params):
    spec: IptablesSpec
    snapshot: Optional[Snapshot] = None  # learns what the restore wrote


class IptablesKind(Kind):
    """One table of one family in a namespace, restored whole (iptables-restore is atomic per table)."""

    name = "iptables"
    params = (TableParams,)
    spec = IptablesSpec
    read = staticmethod(cached_tables)
    plan = staticmethod(plan_iptables)
    report = staticmethod(iptables_report)
    batched = True

    def apply(self, kernel: Kernel, change: Change) -> None:
        """Recompute on the table as this run last read or wrote it (under the host lock nothing else
        changes it; an earlier change of the same plan may have) and restore it in one go."""
        self.apply_batch(kernel, [change], lambda _position: None)

    def apply_batch(self, kernel: Kernel, changes: List[Change], done: Done) -> None:
        """Up to PARALLEL_PROCESSES restores at once, never two in one namespace, in the order given;
        after a failure nothing new starts, what runs is finished, then the first failure is raised."""
        waiting = [(position, _table_params(change)) for position, change in enumerate(changes)]
        running: List[Tuple[int, TableParams, Table, Any]] = []
        failure: Optional[NetnsError] = None
        while running or (waiting and failure is None):
            while failure is None and len(running) < PARALLEL_PROCESSES:
                busy = {params.spec.netns for _position, params, _wanted, _proc in running}
                ready = next((item for item in waiting if item[1].spec.netns not in busy), None)
                if ready is None:
                    break
                waiting.remove(ready)
                try:
                    started = _start_restore(kernel, ready[1])
                except NetnsError as exc:
                    failure = exc
                    break
                if started is None:
                    done(ready[0])  # an earlier change of the batch already made it so
                else:
                    running.append((ready[0], ready[1]) + started)
            if running:
                position, params, wanted, proc = running.pop(0)
                try:
                    kernel.programs.finish(params.spec.netns, [TOOLS[params.spec.ip_version][1], "-c"], proc)
                except NetnsError as exc:
                    failure = failure or exc
                    continue
                _restored(kernel, params, wanted)
                done(position)
        if failure is not None:
            raise failure

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        spec = _table_params(change).spec
        old = current_table(kernel, spec.netns, spec.ip_version, spec.table)

        def restore(kernel_: Kernel) -> None:
            options, text = table_restore(spec, current_table(kernel_, spec.netns, spec.ip_version, spec.table), old)
            kernel_.programs.run(spec.netns, [TOOLS[spec.ip_version][1], "-c"] + options, stdin=text)
            cached_tables(kernel_, spec.netns, spec.ip_version)[spec.table] = old
        return restore


def _table_params(change: Change) -> TableParams:
    return params_of(change, TableParams)


def _start_restore(kernel: Kernel, params: TableParams) -> Optional[Tuple[Table, Any]]:
    """Start restoring the table ``params.spec`` wants, computed on the table as this run last read
    or wrote it; None when it already is so."""
    spec, snapshot = params.spec, params.snapshot
    if snapshot and snapshot.remembered(spec.netns, TOOLS[spec.ip_version][0]):
        kernel.cache.invalidate(spec.netns, "iptables-" + spec.ip_version)  # for its current counters
    current = current_table(kernel, spec.netns, spec.ip_version, spec.table, snapshot)
    wanted = plan_table(spec, current)
    if wanted is None:
        return None
    options, text = table_restore(spec, current, wanted)
    if snapshot:
        snapshot.restoring(kernel, spec.netns)
    return wanted, kernel.programs.start(spec.netns, [TOOLS[spec.ip_version][1], "-c"] + options, text)


def _restored(kernel: Kernel, params: TableParams, table: Table) -> None:
    spec = params.spec
    tables = cached_tables(kernel, spec.netns, spec.ip_version, params.snapshot)
    tables[spec.table] = table
    # iptables-restore replaced the whole table atomically with exactly this (already in
    # iptables-save's canonical form): verification need not spawn iptables-save again.
    kernel.cache.written(spec.netns, "iptables-" + spec.ip_version)
    if params.snapshot:
        params.snapshot.restored(spec.netns, TOOLS[spec.ip_version][0], tables)


IPTABLES = IptablesKind()
