# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables tables per namespace, each owned whole by the topology, all of a namespace's tables
changed in one transaction.

A declared table is ``table FAMILY NAME { DEFINITION }``. What it looks like once in the kernel is
learnt by loading it into a throw-away namespace and listing it as JSON there: nft and the kernel
normalise the text (``tcp dport ssh`` lists as 22, ``priority 0`` as 0, words are reordered), so
the only comparison that does not depend on how the user spelt a rule is listing against listing,
both from the same nft. A dry run (nft_ctx_set_dry_run, ``nft -c``) would validate the definition,
but lists nothing to compare with; it checks the namespace's real transaction in check mode
instead. A definition that nft refuses, or that reaches outside its own table, fails there, before
anything changes. Tables the topology does not declare are never touched.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Dict, List, Optional, Tuple

from ..errors import NetnsError
from ..kernel import nftables as nft
from ..kernel.session import Kernel
from ..kernel.transport import ns_label
from ..model import Change, Kind, Params, Pending, Undo, params_of
from ..system import thread_netns
from ..validation import check_optional_netns

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
# nft's identifiers start with a letter; a few characters more than nft allows would only fail later, in nft.
TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# An include would read a file of the managed host into the table, unseen by the spec.
INCLUDE = re.compile(r"(?:^|[\s;{}])include\s", re.MULTILINE)
DEFINITION_MAX = 1 << 20
TableKey = Tuple[str, str]  # (family, name)
Objects = List[Dict[str, Any]]  # one table as nft lists it in JSON, normalised
_CANONICAL: Dict[Tuple[str, str, str], Objects] = {}


@dataclasses.dataclass(frozen=True)
class NftTableSpec:
    family: str
    table: str
    definition: str
    field: str = "nftables"

    @property
    def key(self) -> TableKey:
        return (self.family, self.table)

    def text(self) -> str:
        return "table %s %s {\n%s\n}\n" % (self.family, self.table, self.definition)


@dataclasses.dataclass(frozen=True)
class NftablesSpec:
    """The declared tables of one namespace; ``state: absent`` removes them (teardown, purge)."""

    netns: Optional[str]
    tables: Tuple[NftTableSpec, ...]
    state: str = "present"


def nft_table_spec(raw: Any, field: str) -> NftTableSpec:
    """Validate one ``nftables`` item; raises NetnsError naming the field."""
    if not isinstance(raw, dict):
        raise NetnsError("must be a mapping with family, table, definition", obj=field)
    unknown = sorted(set(raw) - {"family", "table", "definition"})
    if unknown:
        raise NetnsError("unknown key(s) %s; allowed: definition, family, table" % ", ".join(map(str, unknown)), obj=field)
    family = raw.get("family", "inet")
    if family not in FAMILIES:
        raise NetnsError("must be one of %s, not %r" % (", ".join(FAMILIES), family), obj=field + ".family")
    table = raw.get("table")
    if not isinstance(table, str) or not TABLE_NAME.fullmatch(table):
        raise NetnsError("must match %s, not %r" % (TABLE_NAME.pattern, table), obj=field + ".table")
    definition = raw.get("definition")
    if not isinstance(definition, str):
        raise NetnsError("must be the text inside the table's braces (chains, sets, ...)", obj=field + ".definition")
    if len(definition) > DEFINITION_MAX or "\0" in definition:
        raise NetnsError("must be at most %d characters of text" % DEFINITION_MAX, obj=field + ".definition")
    if INCLUDE.search(definition):
        raise NetnsError("may not include files: declare the table's content itself", obj=field + ".definition")
    if not braces_balanced(definition):
        raise NetnsError("has unbalanced braces: a definition is what goes inside the table's braces, "
                         "it may not close them (and so reach other tables)", obj=field + ".definition")
    return NftTableSpec(family, table, definition, field)


def braces_balanced(definition: str) -> bool:
    """Pure: no ``}`` outside quotes and comments closes more than was opened, and all that was
    opened is closed (nft's strings are "..." without escapes, its comments # to the line's end)."""
    depth = 0
    quoted = comment = False
    for char in definition:
        if comment:
            comment = char != "\n"
        elif quoted:
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char == "#":
            comment = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and not quoted


def nftables_spec(netns: Optional[str], items: Any, field: str = "nftables", state: str = "present") -> NftablesSpec:
    check_optional_netns(netns, "netns")
    if not isinstance(items, (list, tuple)):
        raise NetnsError("must be a list of tables", obj=field)
    tables = tuple(nft_table_spec(item, "%s[%d]" % (field, i)) for i, item in enumerate(items))
    seen: Dict[TableKey, str] = {}
    for table in tables:
        if table.key in seen:
            raise NetnsError("table %s %s is declared twice (also at %s)" % (table.family, table.table, seen[table.key]),
                             obj=table.field + ".table")
        seen[table.key] = table.field
    return NftablesSpec(netns or None, tables, state)


# -- the JSON listing, normalised --------------------------------------------------------------
def _object(item: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    kind = next(iter(item))
    body = item[kind]
    return kind, body if isinstance(body, dict) else {}


def table_of(item: Dict[str, Any]) -> Optional[TableKey]:
    """The (family, table) a listed object belongs to; None for what belongs to none."""
    kind, body = _object(item)
    name = body.get("name") if kind == "table" else body.get("table")
    family = body.get("family")
    return (family, name) if isinstance(family, str) and isinstance(name, str) else None


def _without_state(value: Any) -> Any:
    """Counters' and quotas' running values are the kernel's, not the spec's."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if key in ("counter", "quota") and isinstance(item, dict):
                item = {k: (0 if k in ("packets", "bytes", "used") else v) for k, v in item.items()}
            result[key] = _without_state(item)
        return result
    if isinstance(value, list):
        return [_without_state(item) for item in value]
    return value


def normalise(item: Dict[str, Any]) -> Dict[str, Any]:
    """One listed object without its handle and running counter values (pure)."""
    kind, body = _object(item)
    body = {key: value for key, value in body.items() if key != "handle"}
    if kind in ("counter", "quota"):
        body = {k: (0 if k in ("packets", "bytes", "used") else v) for k, v in body.items()}
    return {kind: _without_state(body)}


def split_tables(objects: List[Dict[str, Any]]) -> Dict[TableKey, Objects]:
    """A namespace's listing as its tables (pure): each table's objects, normalised, in listing order."""
    tables: Dict[TableKey, Objects] = {}
    for item in objects:
        if not item:
            continue
        key = table_of(item)
        if key is not None:
            tables.setdefault(key, []).append(normalise(item))
    return tables


# -- what a definition looks like in the kernel -------------------------------------------------
def canonicalise(tables: List[NftTableSpec]) -> None:
    """Load every declared table not seen yet into one throw-away namespace and keep its listing;
    a definition nft refuses, or that makes anything besides its own table, fails naming it."""
    # One load per distinct definition: namespaces declaring the same table share it (each load and
    # delete costs the kernel an RCU grace period, ~10 ms, when its context is closed).
    unique = {(t.family, t.table, t.definition): t for t in reversed(tables)}
    todo = [t for key, t in reversed(list(unique.items())) if key not in _CANONICAL]
    if not todo:
        return
    backend = nft.backend()
    with thread_netns.scratch_namespace():
        for table in todo:
            rc, _out, err = backend.run(table.text())
            if rc != 0:
                raise NetnsError("nft refuses the table: %s" % nft.error_text(err), obj=table.field + ".definition")
            listed = split_tables(backend.listing())
            others = sorted("%s %s" % key for key in listed if key != table.key)
            if others:
                raise NetnsError("the definition makes more than its own table (%s)" % ", ".join(others),
                                 obj=table.field + ".definition")
            _CANONICAL[(table.family, table.table, table.definition)] = listed.get(table.key, [])
            backend.run("delete table %s %s" % table.key)


def canonical(table: NftTableSpec) -> Objects:
    return _CANONICAL[(table.family, table.table, table.definition)]


# -- reading -----------------------------------------------------------------------------------
def read_nftables(kernel: Kernel, ns: Optional[str]) -> Dict[TableKey, Objects]:
    """All tables of ``ns`` as listed now (cached); a namespace that does not exist (yet) has none."""
    def reader(name: Optional[str]) -> Dict[TableKey, Objects]:
        if not kernel.exists(name):
            return {}
        with kernel.entered(name):
            return split_tables(nft.backend().listing())
    return kernel.cache.get(ns, "nftables", reader)


# -- planning ----------------------------------------------------------------------------------
def table_label(key: TableKey) -> str:
    return "%s %s" % key


def plan_tables(spec: NftablesSpec, current: Dict[TableKey, Objects],
                wanted: Dict[TableKey, Objects]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Pure: (before, after) of the declared tables that differ, by ``family name`` (None: absent)."""
    before: Dict[str, Any] = {}
    after: Dict[str, Any] = {}
    for table in spec.tables:
        have = current.get(table.key)
        want = wanted.get(table.key) if spec.state == "present" else None
        if have != want:
            before[table_label(table.key)] = have
            after[table_label(table.key)] = want
    return before, after


def nftables_key(netns: Optional[str]) -> str:
    return "tables in %s" % ns_label(netns)


def action_of(before: Dict[str, Any], after: Dict[str, Any]) -> str:
    if all(value is None for value in before.values()):
        return "create"
    if all(value is None for value in after.values()):
        return "delete"
    return "update"


def plan_nftables(kernel: Kernel, spec: NftablesSpec, pending: Pending) -> List[Change]:
    """One change for all declared tables of a namespace that differ (one transaction)."""
    if not spec.tables:
        return []
    if not kernel.exists(spec.netns):
        if spec.state == "absent":
            return []
        if not pending.has_namespace(spec.netns):
            raise NetnsError("namespace %s does not exist" % spec.netns, obj="nftables " + nftables_key(spec.netns))
    if spec.state == "present":
        canonicalise(list(spec.tables))
    wanted = {table.key: canonical(table) for table in spec.tables} if spec.state == "present" else {}
    before, after = plan_tables(spec, read_nftables(kernel, spec.netns), wanted)
    if not after:
        return []
    changed = tuple(t for t in spec.tables if table_label(t.key) in after)
    params = NftablesParams(spec.netns, changed, spec.state, fresh=not kernel.exists(spec.netns))
    if not params.fresh:
        _dry_run(kernel, params)
    after = dict(after, applied_with=nft.backend().name)
    return [Change("nftables", action_of(before, {k: v for k, v in after.items() if k != "applied_with"}),
                   nftables_key(spec.netns), before, after, params=params)]


def nftables_report(kernel: Kernel, spec: NftablesSpec) -> Dict[str, Any]:
    current = read_nftables(kernel, spec.netns)
    return {"tables": {table_label(t.key): current.get(t.key) for t in spec.tables}}


# -- applying and undoing -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NftablesParams(Params):
    netns: Optional[str]
    tables: Tuple[NftTableSpec, ...]
    state: str
    fresh: bool = False  # the namespace is made by this run: it has no tables yet


def transaction(params: NftablesParams) -> str:
    """One nft buffer, one transaction: each table made empty (``add`` first, so that a missing one
    does not make ``delete`` fail; 1.0.6 has no ``destroy``), removed and, when present, made anew.
    In a namespace this run made the tables are only made: the kernel holds the closing of a context
    that deleted a table with a base chain for an RCU grace period (~10 ms, a boot's W_nft(N) N times)."""
    parts = []
    for table in params.tables:
        if not params.fresh:
            parts.append("add table %s %s\ndelete table %s %s\n" % (table.key + table.key))
        if params.state == "present":
            parts.append(table.text())
    return "".join(parts)


def _run(kernel: Kernel, ns: Optional[str], text: str, json_input: bool = False, dry_run: bool = False) -> None:
    with kernel.entered(ns):
        rc, _out, err = nft.backend().run(text, json_output=json_input, dry_run=dry_run)
    if rc != 0:
        raise NetnsError("nft %s: %s" % ("refuses the transaction" if dry_run else "failed", nft.error_text(err)),
                         obj="nftables " + nftables_key(ns))


def _dry_run(kernel: Kernel, params: NftablesParams) -> None:
    """The namespace's transaction checked by the kernel without committing it."""
    _run(kernel, params.netns, transaction(params), dry_run=True)


def restore_json(tables: Dict[TableKey, Optional[Objects]]) -> str:
    """A JSON buffer (one transaction) that brings each table back as listed (None: gone)."""
    commands: List[Dict[str, Any]] = []
    for (family, name), objects in tables.items():
        commands.append({"add": {"table": {"family": family, "name": name}}})
        commands.append({"delete": {"table": {"family": family, "name": name}}})
        for item in objects or []:
            commands.append({"add": item})
    return json.dumps({"nftables": commands})


class NftablesKind(Kind):
    """A namespace's declared nftables tables, replaced whole in one transaction."""

    name = "nftables"
    params = (NftablesParams,)
    spec = NftablesSpec
    read = staticmethod(read_nftables)
    plan = staticmethod(plan_nftables)
    report = staticmethod(nftables_report)

    def apply(self, kernel: Kernel, change: Change) -> None:
        params = params_of(change, NftablesParams)
        _run(kernel, params.netns, transaction(params))
        kernel.cache.invalidate(params.netns, "nftables")

    def undo(self, kernel: Kernel, change: Change) -> Optional[Undo]:
        params = params_of(change, NftablesParams)
        current = read_nftables(kernel, params.netns)
        old = {table.key: current.get(table.key) for table in params.tables}

        def restore(kernel_: Kernel) -> None:
            _run(kernel_, params.netns, restore_json(old), json_input=True)
            kernel_.cache.invalidate(params.netns, "nftables")
        return restore


NFTABLES = NftablesKind()
