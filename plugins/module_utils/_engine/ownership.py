# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which objects a topology created, known by identity, so that purge and teardown remove only those.

The record keeps the spec last applied and, for every namespace and link the topology created, what
the kernel does not hand out again within a boot: a namespace's cookie (SO_NETNS_COOKIE; its inode
number where the kernel has no cookie), a link's ifindex together with its namespace's identity,
and the boot they belong to. A name that was deleted and made again by someone else is not ours.
A record written ahead of a run claims the objects the run is about to create before their
identity exists; such a claim stands for the object of that name in the same boot (a run killed
part-way is finished by the next one). Nothing of an earlier boot is ours: the boot restore makes
the topology again and records the new identities.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from .errors import NetnsError
from .kernel.session import Kernel
from .kinds.device import DeviceMove, Placement
from .kinds.link import links
from .kinds.namespace import NamespaceParams
from .kinds.veth import VethPair
from .kinds.virtual_link import VirtualLinkParams
from .model import Change
from .spec import Topology, link_ends, parse_topology
from .system import procfs, trusted_files

STATE_DIR = "/var/lib/linuxnet-netns"
RECORD_VERSION = 2
RETIRED_KINDS = ("addresses", "routes", "rules", "iptables", "nftables")
LinkKey = Tuple[Optional[str], str]  # (namespace, name)
Identity = Optional[List[Any]]  # None: claimed ahead of its creation


@dataclasses.dataclass
class LinkClaim:
    type: str  # veth, bridge, vlan, macvlan
    identity: Identity  # [namespace identity, ifindex]
    peer: Optional[LinkKey] = None  # a veth's other end


@dataclasses.dataclass
class Record:
    spec: Dict[str, Any]
    boot_id: str = ""
    namespaces: Dict[str, Identity] = dataclasses.field(default_factory=dict)
    links: Dict[LinkKey, LinkClaim] = dataclasses.field(default_factory=dict)
    # Addresses, routes and rules an earlier spec declared and the current one no longer does, kept until a purge.
    retired: Dict[str, List[Any]] = dataclasses.field(default_factory=dict)
    # Host devices it moved into a namespace (not created: owned is their placement), by where they are.
    devices: Dict[LinkKey, Placement] = dataclasses.field(default_factory=dict)
    _parsed: Optional[Topology] = dataclasses.field(default=None, compare=False, repr=False)
    source: str = dataclasses.field(default="ownership record", compare=False, repr=False)  # its file

    def topology(self) -> Topology:
        """The recorded spec, parsed once (only when it is not the spec of this run)."""
        if self._parsed is None:
            try:
                self._parsed = parse_topology(self.spec, for_apply=False)  # applied before: only understood
            except NetnsError as exc:
                raise NetnsError("ownership record holds an invalid topology: %s" % exc, obj=self.source) from None
        return self._parsed

    def parsed_as(self, spec: Dict[str, Any], topology: Topology) -> None:
        """Reuse ``topology``, parsed from ``spec``, if the recorded spec is that same spec."""
        if self._parsed is None and self.spec == spec:
            self._parsed = topology

    def has_claims_to_settle(self) -> bool:
        return self.boot_id != procfs.boot_id() or None in self.namespaces.values() \
            or any(claim.identity is None for claim in self.links.values()) \
            or any(placement.identity is None for placement in self.devices.values())

    def as_json(self) -> str:
        devices = {"devices": [dict(placement.as_json(), netns=ns, name=name)
                               for (ns, name), placement in sorted(self.devices.items(), key=str)]} if self.devices else {}
        return json.dumps({
            **devices,
            "version": RECORD_VERSION, "boot_id": self.boot_id, "spec": self.spec, "retired": self.retired,
            "namespaces": self.namespaces,
            "links": [{"netns": ns, "name": name, "type": claim.type, "identity": claim.identity,
                       "peer": None if claim.peer is None else list(claim.peer)}
                      for (ns, name), claim in sorted(self.links.items(), key=str)],
        }, indent=1, sort_keys=True) + "\n"


def empty(spec: Dict[str, Any]) -> Record:
    return Record(spec, procfs.boot_id())


def record_path(name: str, state_dir: str = STATE_DIR) -> str:
    return os.path.join(state_dir, "%s.owned.json" % name)


# -- the file -------------------------------------------------------------------------------
def load(name: str, state_dir: str = STATE_DIR) -> Optional[Record]:
    """The record, None if there is none. A file of the wrong shape is an error naming it."""
    path = record_path(name, state_dir)
    text = trusted_files.read_trusted(path)
    if text is None:
        return None
    try:
        record = _from_json(json.loads(text))
    except NetnsError as exc:
        raise NetnsError("ownership record holds an invalid topology: %s" % exc, obj=path) from None
    except RecursionError:
        raise NetnsError("ownership record is nested too deeply", obj=path) from None
    except ValueError as exc:
        raise NetnsError("ownership record is unreadable: %s" % exc, obj=path) from None
    record.source = path
    return record


def _from_json(data: Any) -> Record:
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        raise ValueError("not an object with a spec")
    if data.get("version") == 1:
        return _from_version_1(data)
    if data.get("version") != RECORD_VERSION:
        raise ValueError("unknown format version %r" % (data.get("version"),))
    boot_id, namespaces, retired = data.get("boot_id"), data.get("namespaces"), data.get("retired")
    if not isinstance(boot_id, str) or not isinstance(namespaces, dict) or not isinstance(retired, dict):
        raise ValueError("boot_id, namespaces or retired of the wrong type")
    for name, identity in namespaces.items():
        _check_identity(identity, "namespaces.%s" % name, 2)
    claims: Dict[LinkKey, LinkClaim] = {}
    for i, item in enumerate(_typed(data.get("links"), list, "links")):
        where = "links[%d]" % i
        _typed(item, dict, where)
        key = (_optional_str(item.get("netns"), where + ".netns"), _typed(item.get("name"), str, where + ".name"))
        _check_identity(item.get("identity"), where + ".identity", 2)
        if item["identity"] is not None:
            _check_identity(item["identity"][0], where + ".identity[0]", 2)
        peer = item.get("peer")
        if peer is not None:
            if not (isinstance(peer, list) and len(peer) == 2 and isinstance(peer[1], str)):
                raise ValueError("%s.peer must be [netns, name]" % where)
            peer = (_optional_str(peer[0], where + ".peer[0]"), peer[1])
        claims[key] = LinkClaim(_typed(item.get("type"), str, where + ".type"), item["identity"], peer)
    return Record(data["spec"], boot_id, dict(namespaces), claims, _check_retired(retired),
                  _placements(data.get("devices", [])))


def _placements(items: Any) -> Dict[LinkKey, Placement]:
    result: Dict[LinkKey, Placement] = {}
    for i, item in enumerate(_typed(items, list, "devices")):
        where = "devices[%d]" % i
        _typed(item, dict, where)
        _check_identity(item.get("identity"), where + ".identity", 2)
        if not isinstance(item.get("up"), bool):
            raise ValueError("%s.up must be true or false" % where)
        key = (_typed(item.get("netns"), str, where + ".netns"), _typed(item.get("name"), str, where + ".name"))
        result[key] = Placement(_typed(item.get("original"), str, where + ".original"), item["identity"], item["up"])
    return result


def _from_version_1(data: Dict[str, Any]) -> Record:
    """A record of an earlier version knew objects by name only: what it did not call foreign is
    claimed as the topology's own once, and known by identity from the next run on."""
    topology = parse_topology(data["spec"], for_apply=False)
    foreign_ns = set(_typed(data.get("foreign_namespaces", []), list, "foreign_namespaces"))
    foreign_links = {tuple(item) for item in _typed(data.get("foreign_links", []), list, "foreign_links")}
    record = Record(data["spec"], procfs.boot_id())
    for ns in topology.namespaces:
        if ns["name"] not in foreign_ns:
            record.namespaces[ns["name"]] = None
    for item in topology.links:
        ends = [(end.netns, end.name) for end in link_ends(item)]
        for end in ends:
            if end not in foreign_links:
                record.links[end] = LinkClaim(item["type"], None, _other(ends, end))
    retired = data.get("retired") or {}
    record.retired = _check_retired({k: v for k, v in _typed(retired, dict, "retired").items()
                                     if k in RETIRED_KINDS})
    return record


def _check_retired(retired: Dict[str, Any]) -> Dict[str, List[Any]]:
    result: Dict[str, List[Any]] = {}
    for kind, items in retired.items():
        if kind not in RETIRED_KINDS:
            raise ValueError("retired.%s is not a kind of object" % kind)
        for i, entry in enumerate(_typed(items, list, "retired." + kind)):
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
                raise ValueError("retired.%s[%d] must be [netns, object]" % (kind, i))
            _optional_str(entry[0], "retired.%s[%d][0]" % (kind, i))
        result[kind] = [list(entry) for entry in items]
    return result


def _check_identity(value: Any, where: str, length: int) -> None:
    if value is None:
        return
    if not (isinstance(value, list) and len(value) == length):
        raise ValueError("%s must be a list of %d or null" % (where, length))


def _typed(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError("%s must be a %s" % (where, kind.__name__))
    return value


def _optional_str(value: Any, where: str) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise ValueError("%s must be a string or null" % where)
    return value


def save(name: str, record: Record, state_dir: str = STATE_DIR) -> None:
    trusted_files.private_directory(state_dir)
    trusted_files.write_file_atomically(record_path(name, state_dir), record.as_json(), 0o600)


def remove(name: str, state_dir: str = STATE_DIR) -> None:
    trusted_files.remove_file(record_path(name, state_dir))


# -- what is ours ---------------------------------------------------------------------------
def owns_namespace(kernel: Kernel, record: Optional[Record], name: str) -> bool:
    """Whether the namespace named ``name`` now is the one this topology created."""
    if record is None or name not in record.namespaces or record.boot_id != procfs.boot_id() or not kernel.exists(name):
        return False
    claimed = record.namespaces[name]
    return claimed is None or claimed == kernel.identity(name)


def owns_link(kernel: Kernel, record: Optional[Record], key: LinkKey) -> bool:
    """Whether the link ``key`` now is the one this topology created."""
    if record is None or key not in record.links or record.boot_id != procfs.boot_id():
        return False
    ns, name = key
    link = links(kernel, ns).get(name) if kernel.exists(ns) else None
    if link is None:
        return False
    claimed = record.links[key].identity
    return claimed is None or claimed == [kernel.identity(ns), link.index]


def owned_namespaces(kernel: Kernel, record: Optional[Record]) -> List[str]:
    return [name for name in sorted(record.namespaces) if owns_namespace(kernel, record, name)] if record else []


def owned_links(kernel: Kernel, record: Optional[Record]) -> Dict[LinkKey, LinkClaim]:
    return {key: claim for key, claim in sorted(record.links.items(), key=str)
            if owns_link(kernel, record, key)} if record else {}


def owned_placements(kernel: Kernel, record: Optional[Record]) -> Dict[LinkKey, Placement]:
    """The devices this topology moved (in this boot), where they still are."""
    if record is None or record.boot_id != procfs.boot_id():
        return {}
    return {key: placement for key, placement in record.devices.items() if _placed_here(kernel, key, placement)}


def _placed_here(kernel: Kernel, key: LinkKey, placement: Placement) -> bool:
    ns, name = key
    if not kernel.exists(ns):
        return False
    if placement.identity is None:
        return name in links(kernel, ns)
    return placement.identity[0] == kernel.identity(ns) and any(
        link.index == placement.identity[1] for link in links(kernel, ns).values())


def moved_by(changes: Iterable[Change]) -> Dict[LinkKey, Placement]:
    """The placements ``changes`` make (a move into a namespace, a rename there), unconfirmed."""
    return {(params.to_ns, params.name): Placement(params.original, None, params.up)
            for params in (change.params for change in changes)
            if isinstance(params, DeviceMove) and params.to_ns is not None}


def _other(ends: List[LinkKey], end: LinkKey) -> Optional[LinkKey]:
    others = [other for other in ends if other != end]
    return others[0] if others else None


def created_by(changes: Iterable[Change]) -> Tuple[Set[str], Dict[LinkKey, LinkClaim]]:
    """The namespaces and links ``changes`` create, as unconfirmed claims."""
    namespaces: Set[str] = set()
    claims: Dict[LinkKey, LinkClaim] = {}
    for change in changes:
        params = change.params
        if change.action != "create":
            continue
        if isinstance(params, NamespaceParams):
            namespaces.add(params.name)
        elif isinstance(params, VethPair):
            ends = [(params.end.netns, params.end.name), (params.peer.netns, params.peer.name)]
            for end in ends:
                claims[end] = LinkClaim("veth", None, _other(ends, end))
        elif isinstance(params, VirtualLinkParams):
            claims[(params.ns, params.name)] = LinkClaim(params.link_type, None)
    return namespaces, claims


def claimed(record: Record, changes: List[Change]) -> Record:
    """The record written ahead of ``changes``: what they create is claimed before it exists."""
    namespaces, claims = created_by(changes)
    ahead = dataclasses.replace(record, namespaces=dict(record.namespaces), links=dict(record.links),
                                devices=dict(record.devices))
    if ahead.boot_id != procfs.boot_id():
        ahead.boot_id, ahead.namespaces, ahead.links, ahead.devices = procfs.boot_id(), {}, {}, {}
    ahead.devices.update(moved_by(changes))
    ahead.namespaces.update({name: None for name in namespaces if name not in ahead.namespaces})
    # A link the run creates under a claimed name replaces the claimed one (a vxlan whose id
    # changed): the old identity names nothing once the run is done, the claim by name does.
    ahead.links.update(claims)
    return ahead


def settled(record: Record, spec: Dict[str, Any], topology: Topology, kernel: Kernel, standing: List[Change],
            purged: bool) -> Record:
    """The record after a run whose ``standing`` changes are in the kernel: what it created and what
    was ours before and still is, each with its identity now; retired objects as the spec says."""
    new_ns, new_links = created_by(standing)
    result = Record(spec, procfs.boot_id())
    for name in sorted(set(record.namespaces) | new_ns):
        if kernel.exists(name) and (name in new_ns or owns_namespace(kernel, record, name)):
            result.namespaces[name] = kernel.identity(name)
    for key in sorted(set(record.links) | set(new_links), key=str):
        ns, name = key
        link = links(kernel, ns).get(name) if kernel.exists(ns) else None
        if link is not None and (key in new_links or owns_link(kernel, record, key)):
            claim = new_links.get(key) or record.links[key]
            result.links[key] = LinkClaim(claim.type, [kernel.identity(ns), link.index], claim.peer)
    result.devices = _settled_placements(record, kernel, standing)
    if not purged:
        declared = {ns["name"] for ns in topology.namespaces}
        gone = {name for name in result.namespaces if name not in declared}  # a purge takes them whole
        result.retired = _as_json_lists(retired_objects(record, topology, gone))
    return result


def _settled_placements(record: Record, kernel: Kernel, standing: List[Change]) -> Dict[LinkKey, Placement]:
    moved = moved_by(standing)
    returned = {(params.from_ns, params.from_name) for params in (change.params for change in standing)
                if isinstance(params, DeviceMove)}
    kept = {key: placement for key, placement in owned_placements(kernel, record).items() if key not in returned}
    result: Dict[LinkKey, Placement] = {}
    for key, placement in sorted({**kept, **moved}.items(), key=str):
        ns, name = key
        link = links(kernel, ns).get(name) if kernel.exists(ns) else None
        if link is not None:
            result[key] = dataclasses.replace(placement, identity=[kernel.identity(ns), link.index])
    return result


# -- what an earlier spec declared and this one does not -------------------------------------
def _as_json_lists(leftovers: Dict[str, List[Any]]) -> Dict[str, List[Any]]:
    return {kind: [list(item) if isinstance(item, tuple) else item for item in items]
            for kind, items in leftovers.items() if items}


def retired_objects(record: Record, topology: Topology, gone_namespaces: Set[str]) -> Dict[str, List[Any]]:
    """Addresses, routes and rules that ``record``'s spec (or an earlier one, its ``retired``)
    declared and ``topology`` does not, outside ``gone_namespaces`` (they go with those)."""
    old = record.topology()
    result: Dict[str, List[Any]] = {kind: [] for kind in RETIRED_KINDS}
    new_scopes = {netns: section for netns, section, _path in topology.scopes()}
    for netns, section, _path in old.scopes():
        if netns in gone_namespaces:
            continue
        now = new_scopes.get(netns, {kind: [] for kind in RETIRED_KINDS})
        now_addresses = {(a["dev"], a["address"]) for a in now["addresses"]}
        result["addresses"] += [(netns, a) for a in section["addresses"] if (a["dev"], a["address"]) not in now_addresses]
        now_routes = {_route_id(r) for r in now["routes"]}
        result["routes"] += [(netns, {k: v for k, v in r.items() if k != "path"})
                             for r in section["routes"] if _route_id(r) not in now_routes]
        now_rules = [_rule_id(r) for r in now["rules"]]
        result["rules"] += [(netns, r) for r in section["rules"] if _rule_id(r) not in now_rules]
        result["iptables"] += [(netns, t) for t in _removed_rules(section["iptables"], now["iptables"])]
        now_tables = _nft_keys(now.get("nftables", []))
        result["nftables"] += [(netns, {"family": t["family"], "table": t["table"]}) for t in section.get("nftables", [])
                               if (t["family"], t["table"]) not in now_tables]
    _add_retired(result, record.retired, gone_namespaces, new_scopes)
    return result


def _add_retired(result: Dict[str, List[Any]], retired: Dict[str, List[Any]], gone_namespaces: Set[str],
                 new_scopes: Dict[Any, Any]) -> None:
    """Leftovers of earlier runs without purge, unless declared again (or already listed)."""
    def declared_again(kind: str, netns: Optional[str], item: Any) -> bool:
        now = new_scopes.get(netns)
        if now is None:
            return False
        if kind == "addresses":
            return any((a["dev"], a["address"]) == (item["dev"], item["address"]) for a in now["addresses"])
        if kind == "rules":
            return _rule_id(item) in [_rule_id(r) for r in now["rules"]]
        return _route_id(item) in {_route_id(r) for r in now["routes"]}

    for kind in ("addresses", "routes", "rules"):
        for netns, item in retired.get(kind, []):
            entry = (netns, item)
            if netns not in gone_namespaces and not declared_again(kind, netns, item) and entry not in result[kind]:
                result[kind].append(entry)
    for netns, table in retired.get("nftables", []):
        entry = (netns, {"family": table.get("family"), "table": table.get("table")})
        now = new_scopes.get(netns)
        if (netns not in gone_namespaces and entry not in result["nftables"]
                and (now is None or (table.get("family"), table.get("table")) not in _nft_keys(now.get("nftables", [])))):
            result["nftables"].append(entry)
    for netns, table in retired.get("iptables", []):
        now = new_scopes.get(netns, {"iptables": []})
        for entry in [(netns, t) for t in _removed_rules([table], now["iptables"])]:  # rules declared again stay
            if netns not in gone_namespaces and entry not in result["iptables"]:
                result["iptables"].append(entry)


def _nft_keys(tables: List[Dict[str, Any]]) -> Set[Tuple[Any, Any]]:
    """The (family, table) of declared nftables tables: a table is the topology's whole."""
    return {(t.get("family"), t.get("table")) for t in tables}


def _route_id(route: Dict[str, Any]) -> Tuple[Any, ...]:
    return (route["dst"], route["table"], route["metric"])


def _rule_id(rule: Dict[str, Any]) -> Dict[str, Any]:
    """A policy rule's key, without its table: a rule declared again with another table is made
    to match where it is, not retired."""
    return {key: rule.get(key) for key in ("family", "priority", "from", "to", "iif", "oif", "fwmark", "fwmask")}


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
