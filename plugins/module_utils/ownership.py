# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which objects a topology manages, so that purge removes only what it created.

The record keeps the spec last applied and the namespaces/links that already existed before this
topology first declared them ("foreign"): purge and teardown never remove those.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Set, Tuple

from . import nsfs
from .errors import NetnsError
from .links import link_key
from .plan import Change
from .topology_spec import Topology, link_ends, parse_topology

STATE_DIR = "/var/lib/linuxnet-netns"
RECORD_VERSION = 1


@dataclasses.dataclass
class Record:
    spec: Dict[str, Any]
    foreign_namespaces: Set[str] = dataclasses.field(default_factory=set)
    foreign_links: Set[Tuple[Optional[str], str]] = dataclasses.field(default_factory=set)
    # Objects an earlier spec declared and the current one no longer does, kept until a purge.
    retired: Dict[str, List[Any]] = dataclasses.field(default_factory=dict)
    _parsed: Optional[Topology] = dataclasses.field(default=None, compare=False, repr=False)

    def topology(self) -> Topology:
        """The recorded spec, parsed once."""
        if self._parsed is None:
            self._parsed = parse_topology(self.spec, for_apply=False)  # applied before: only understood
        return self._parsed

    def parsed_as(self, spec: Dict[str, Any], topology: Topology) -> None:
        """Reuse ``topology``, parsed from ``spec``, if the recorded spec is that same spec."""
        if self._parsed is None and self.spec == spec:
            self._parsed = topology

    def as_json(self) -> str:
        return json.dumps({"version": RECORD_VERSION, "spec": self.spec, "retired": self.retired,
                           "foreign_namespaces": sorted(self.foreign_namespaces),
                           "foreign_links": sorted([list(k) for k in self.foreign_links], key=str)},
                          indent=1, sort_keys=True) + "\n"


def record_path(name: str, state_dir: str = STATE_DIR) -> str:
    return os.path.join(state_dir, "%s.owned.json" % name)


def load(name: str, state_dir: str = STATE_DIR) -> Optional[Record]:
    path = record_path(name, state_dir)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NetnsError("ownership record is unreadable: %s" % exc, obj=path) from None
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION or "spec" not in data:
        raise NetnsError("ownership record has an unknown format", obj=path)
    return Record(data["spec"], set(data.get("foreign_namespaces", [])),
                  {(k[0], k[1]) for k in data.get("foreign_links", [])}, data.get("retired") or {})


def save(name: str, record: Record, state_dir: str = STATE_DIR) -> None:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    nsfs.write_file_atomically(record_path(name, state_dir), record.as_json(), 0o600)


def remove(name: str, state_dir: str = STATE_DIR) -> None:
    try:
        os.unlink(record_path(name, state_dir))
    except FileNotFoundError:
        pass


def updated(previous: Optional[Record], spec: Dict[str, Any], topology: Topology,
            changes: List[Change], purged: bool = False) -> Record:
    """The record after applying ``changes``: objects that existed before and were not created by
    this topology (now or earlier) stay foreign."""
    created_ns = {c.key for c in changes if c.kind == "netns" and c.action == "create"}
    created_links = {c.key for c in changes if c.kind == "link" and c.action == "create"}
    old = previous.topology() if previous else None
    old_ns = {ns["name"] for ns in old.namespaces} - previous.foreign_namespaces if old else set()
    old_links = {(e.netns, e.name) for e in old.endpoints} - previous.foreign_links if old else set()
    foreign_ns = {ns["name"] for ns in topology.namespaces
                  if ns["name"] not in created_ns and ns["name"] not in old_ns}
    foreign_links: Set[Tuple[Optional[str], str]] = set()
    for item in topology.links:
        ends = [(end.netns, end.name) for end in link_ends(item)]
        created = any(link_key(ns, name) in created_links or ns in created_ns for ns, name in ends)
        foreign_links |= {end for end in ends if not created and end not in old_links}
    retired = {} if purged or previous is None else _as_json_lists(undeclared(previous, topology))
    return Record(spec, foreign_ns, foreign_links, retired)


def _as_json_lists(leftovers: Dict[str, List[Any]]) -> Dict[str, List[Any]]:
    return {kind: [list(item) if isinstance(item, tuple) else item for item in items]
            for kind, items in leftovers.items() if items}


def undeclared(record: Record, topology: Topology) -> Dict[str, List[Any]]:
    """What ``record`` manages that ``topology`` no longer declares, by kind."""
    old = record.topology()
    new_ns = {ns["name"] for ns in topology.namespaces}
    gone_ns = [ns["name"] for ns in old.namespaces
               if ns["name"] not in new_ns and ns["name"] not in record.foreign_namespaces]
    new_links = {(e.netns, e.name) for e in topology.endpoints}
    gone_links = [item for item in old.links
                  if (item.get("netns"), item["name"]) not in new_links
                  and (item.get("netns"), item["name"]) not in record.foreign_links]
    result: Dict[str, List[Any]] = {"namespaces": gone_ns, "links": gone_links,
                                    "addresses": [], "routes": [], "iptables": []}
    new_scopes = {netns: section for netns, section, _ in topology.scopes()}
    for netns, section, _ in old.scopes():
        if netns in gone_ns:
            continue  # removed with its namespace
        now = new_scopes.get(netns, {"addresses": [], "routes": [], "iptables": []})
        now_addresses = {(a["dev"], a["address"]) for a in now["addresses"]}
        result["addresses"] += [(netns, a) for a in section["addresses"] if (a["dev"], a["address"]) not in now_addresses]
        now_routes = {_route_id(r) for r in now["routes"]}
        result["routes"] += [(netns, {k: v for k, v in r.items() if k != "path"})
                             for r in section["routes"] if _route_id(r) not in now_routes]
        result["iptables"] += [(netns, t) for t in _removed_rules(section["iptables"], now["iptables"])]
    _add_retired(result, record.retired, topology, new_ns, new_links, new_scopes)
    return result


def _add_retired(result: Dict[str, List[Any]], retired: Dict[str, List[Any]], topology: Topology,
                 new_ns: Set[str], new_links: Set[Tuple[Optional[str], str]], new_scopes: Dict[Any, Any]) -> None:
    """Leftovers of earlier runs without purge, unless declared again (or already listed)."""
    def declared_again(kind: str, netns: Optional[str], item: Any) -> bool:
        now = new_scopes.get(netns)
        if now is None:
            return False
        if kind == "addresses":
            return any((a["dev"], a["address"]) == (item["dev"], item["address"]) for a in now["addresses"])
        if kind == "routes":
            return _route_id(item) in {_route_id(r) for r in now["routes"]}
        return False

    for name in retired.get("namespaces", []):
        if name not in new_ns and name not in result["namespaces"]:
            result["namespaces"].append(name)
    for item in retired.get("links", []):
        if (item.get("netns"), item["name"]) not in new_links and item not in result["links"]:
            result["links"].append(item)
    for kind in ("addresses", "routes", "iptables"):
        for netns, item in retired.get(kind, []):
            entry = (netns, item)
            if netns not in result["namespaces"] and not declared_again(kind, netns, item) and entry not in result[kind]:
                result[kind].append(entry)


def _route_id(route: Dict[str, Any]) -> Tuple[Any, ...]:
    return (route["dst"], route["table"], route["metric"])


def _removed_rules(old: List[Dict[str, Any]], new: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per table, the chains' rules that were declared before and are not now (as absent specs)."""
    declared = {(t["ip_version"], t["table"], c.get("name"), json.dumps(r, sort_keys=True))
                for t in new for c in t["chains"] for r in c.get("rules") or []}
    result = []
    for table in old:
        chains = []
        for chain in table["chains"]:
            gone = [r for r in chain.get("rules") or []
                    if (table["ip_version"], table["table"], chain.get("name"), json.dumps(r, sort_keys=True))
                    not in declared]
            if gone:
                chains.append({"name": chain.get("name"), "rules": gone})
        if chains:
            result.append({"ip_version": table["ip_version"], "table": table["table"], "chains": chains})
    return result
