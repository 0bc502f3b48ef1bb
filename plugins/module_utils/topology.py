# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A whole topology through the engine: namespaces -> links -> addresses -> routes -> rules.

Everything is planned before anything is applied (later planners see what earlier changes will
create through ``Pending``), so check mode predicts a whole topology on an empty host.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional, Tuple

from . import iptables_snapshot, ownership
from .addresses import address_spec, plan_addresses
from .errors import NetnsError
from .iptables import canonicalise, iptables_spec, plan_iptables, prefetch_tables
from .kernel import Kernel
from .namespaces import namespace_spec, plan_namespace, plan_sysctls, split_sysctls, try_sysctls
from .plan import Change, Pending
from .routes import plan_routes, route_spec
from .topology_spec import Endpoint, Topology, link_ends, parse_topology
from .veth import plan_veth, veth_spec
from .virtual_links import plan_virtual_link, virtual_link_spec

LOOPBACK = {"up": True, "down": False, "unmanaged": None}


# -- specs for the per-kind planners ---------------------------------------------------------
def _namespace(ns: Dict[str, Any], state: str = "present", path: str = "") -> Any:
    return namespace_spec(ns["name"], state, ns.get("sysctls"), ns.get("nameservers"),
                          LOOPBACK[ns.get("loopback", "up")], path=path)


def _link(item: Dict[str, Any], state: str = "present") -> Any:
    if item["type"] == "veth":
        return veth_spec(item["name"], item["peer"], netns=item.get("netns"), peer_netns=item.get("peer_netns"),
                         mtu=item.get("mtu"), peer_mtu=item.get("peer_mtu"), mac=item.get("mac"),
                         peer_mac=item.get("peer_mac"), up=item.get("up", True),
                         peer_up=item.get("peer_up", True), state=state, field=item.get("path", "links"))
    spec = virtual_link_spec(item)
    return spec if state == "present" else type(spec)(**dict(spec.__dict__, state="absent"))


def _plan_link(kernel: Kernel, spec: Any, pending: Pending) -> List[Change]:
    if hasattr(spec, "link_type"):
        return plan_virtual_link(kernel, spec, pending)
    return plan_veth(kernel, spec, pending)


def _address_specs(netns: Optional[str], section: Dict[str, Any], state: str = "present") -> List[Any]:
    by_dev: Dict[Tuple[str, bool], List[str]] = {}
    for item in section.get("addresses", []):
        by_dev.setdefault((item["dev"], item.get("nodad", False)), []).append(item["address"])
    return [address_spec(netns, dev, addresses, state=state, nodad=nodad)
            for (dev, nodad), addresses in by_dev.items()]


def _route_specs(netns: Optional[str], section: Dict[str, Any], state: str = "present") -> List[Any]:
    routes = [{k: v for k, v in r.items() if k != "path"} for r in section.get("routes", [])]
    return [route_spec(netns, routes, state=state)] if routes else []


def _iptables_specs(netns: Optional[str], section: Dict[str, Any], state: str = "present") -> List[Any]:
    return [iptables_spec(netns, t["ip_version"], t["table"], t["chains"], state=state, field=t.get("path", "iptables"))
            for t in section.get("iptables", [])]


# -- planning ------------------------------------------------------------------------------
def plan_purge_stage(kernel: Kernel, topology: Topology, owned: Optional[ownership.Record],
                     pending: Pending) -> List[Change]:
    """What this topology created earlier and no longer declares. Applied as a stage of its own
    before the rest is planned: a declared veth may reuse the name of an end that goes (in check
    mode, where nothing is applied, ``pending`` tells the later planners which links go)."""
    if owned is None:
        return []
    leftovers = ownership.undeclared(owned, topology)
    pending.doomed_links |= {(end.netns, end.name) for item in leftovers.get("links", []) for end in link_ends(item)}
    return plan_purge(kernel, leftovers)


def plan_topology(kernel: Kernel, topology: Topology, purge: bool = False,
                  owned: Optional[ownership.Record] = None, pending: Optional[Pending] = None) -> List[Change]:
    """Every change that brings the kernel to ``topology`` (and, with ``purge``, first removes what
    this topology created earlier and no longer declares), in dependency order."""
    pending = pending if pending is not None else Pending()
    changes: List[Change] = []
    if purge:
        changes += plan_purge_stage(kernel, topology, owned, pending)
    per_link_sysctls = []
    for i, ns in enumerate(topology.namespaces):
        own_links = frozenset(end.name for end in topology.endpoints if end.netns == ns["name"])
        spec, after_links = split_sysctls(_namespace(ns, path="namespaces[%d]" % i), own_links)
        planned = plan_namespace(kernel, spec, try_values=False)
        if any(c.kind == "netns" and c.action == "create" for c in planned):
            pending.namespaces.add(ns["name"])
        changes += planned
        per_link_sysctls.append((after_links, own_links))
    for item in topology.links:
        changes += _plan_link(kernel, _link(item), pending)
    # The keys of a declared link exist once it does: set after the links, before its addresses.
    for spec, own_links in per_link_sysctls:
        changes += plan_sysctls(kernel, spec, own_links, try_values=False)
    try_sysctls(changes)
    scopes = topology.scopes()
    for netns, section, _path in scopes:
        for spec in _address_specs(netns, section):
            changes += plan_addresses(kernel, spec, pending)
    for netns, section, _path in scopes:
        for spec in _route_specs(netns, section):
            changes += plan_routes(kernel, spec, pending)
    rule_specs = [spec for netns, section, _path in scopes for spec in _iptables_specs(netns, section)]
    if rule_specs:
        canonicalise(kernel, rule_specs)
        prefetch_tables(kernel, [(spec.netns, spec.ip_version) for spec in rule_specs])
        for spec in rule_specs:
            changes += plan_iptables(kernel, spec, pending)
    return changes


def plan_teardown(kernel: Kernel, topology: Topology, owned: Optional[ownership.Record] = None) -> List[Change]:
    """Remove ``topology`` in reverse order, except namespaces and links that existed before it
    (``owned.foreign_*``): of those only the declared addresses, routes and rules go.

    Namespaces go before root-namespace links: deleting a namespace takes its veth ends with it,
    and many namespace deletions settle together far faster than one link deletion after another."""
    foreign_ns = owned.foreign_namespaces if owned else set()
    foreign_links = owned.foreign_links if owned else set()
    doomed = {ns["name"] for ns in topology.namespaces} - foreign_ns
    # Addresses on links that the namespace deletions take along go with them.
    dying = {end for item in topology.links if _lives_only_in(item, doomed) for end in link_ends(item)}
    changes: List[Change] = []
    for netns, section, _path in reversed(topology.scopes()):
        if netns in doomed:
            continue
        specs = _iptables_specs(netns, section, "absent")
        if specs:
            canonicalise(kernel, specs)
        for spec in specs:
            changes += plan_iptables(kernel, spec, Pending())
        for spec in _route_specs(netns, section, "absent"):
            changes += plan_routes(kernel, spec, Pending())
        for spec in _address_specs(netns, section, "absent"):
            if Endpoint(netns, spec.dev) not in dying:
                changes += plan_addresses(kernel, spec, Pending())
    for ns in reversed(topology.namespaces):
        if ns["name"] in doomed:
            changes += plan_namespace(kernel, _namespace(ns, "absent"))
    for item in reversed(topology.links):
        if _lives_only_in(item, doomed) or (item.get("netns"), item["name"]) in foreign_links:
            continue
        changes += _plan_link(kernel, _link(item, "absent"), Pending())
    return changes


def _lives_only_in(item: Dict[str, Any], namespaces: set) -> bool:
    """True when deleting ``namespaces`` removes this link anyway (an end of it lives in one)."""
    return any(end.netns is not None and end.netns in namespaces for end in link_ends(item))


def plan_purge(kernel: Kernel, leftovers: Dict[str, List[Any]]) -> List[Change]:
    """Remove objects this topology created before and no longer declares, rules first."""
    changes: List[Change] = []
    for netns, table in leftovers.get("iptables", []):
        spec = iptables_spec(netns, table["ip_version"], table["table"], table["chains"], state="absent")
        canonicalise(kernel, [spec])
        changes += plan_iptables(kernel, spec, Pending())
    for netns, route in leftovers.get("routes", []):
        changes += plan_routes(kernel, route_spec(netns, [route], state="absent"), Pending())
    for netns, item in leftovers.get("addresses", []):
        changes += plan_addresses(kernel, address_spec(netns, item["dev"], [item["address"]], state="absent"), Pending())
    for name in leftovers.get("namespaces", []):
        changes += plan_namespace(kernel, namespace_spec(name, "absent"))
    for item in leftovers.get("links", []):
        if not _lives_only_in(item, set(leftovers.get("namespaces", []))):
            try:
                changes += _plan_link(kernel, _link(item, "absent"), Pending())
            except NetnsError:
                pass  # the name now belongs to another link, which this topology did not create
    return changes


# -- the one entry point of the topology module and the restore program -----------------------
def summary(changes: List[Change]) -> Dict[str, Dict[str, int]]:
    """{kind: {action: count}} of a plan."""
    result: Dict[str, Dict[str, int]] = {}
    for change in changes:
        per_kind = result.setdefault(change.kind, {})
        per_kind[change.action] = per_kind.get(change.action, 0) + 1
    return result


def described(data: Dict[str, Any]) -> Dict[str, Any]:
    """A validated topology as a result names it: its name, its size and the SHA-256 of its JSON
    (sorted keys), not the whole of it again."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return {"name": data["name"], "namespaces": len(data.get("namespaces") or []),
            "links": len(data.get("links") or []), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def converge_topology(kernel: Kernel, data: Dict[str, Any], state: str = "present", purge: bool = False,
                      check_mode: bool = False, state_dir: str = ownership.STATE_DIR,
                      rollback: bool = False) -> List[Change]:
    """Validate ``data`` in full, then bring the kernel to it (or tear it down) under the host lock;
    records ownership after a real run."""
    from .module_runner import converge, converge_stages

    topology = parse_topology(data)
    record = ownership.load(topology.name, state_dir)
    if record is not None:
        record.parsed_as(data, topology)
    snapshot_path = iptables_snapshot.snapshot_path(topology.name, state_dir)
    if state == "absent":
        if not check_mode:
            iptables_snapshot.remove(snapshot_path)
        changes = converge(kernel, lambda k, _pending: plan_teardown(k, topology, record), check_mode,
                           rollback=rollback)
        if not check_mode:
            # Keep remembering what existed before the topology, so a repeated teardown still leaves
            # those objects alone; but nothing of the topology is left, so a later apply must neither
            # purge its old names (they may belong to others by then) nor take them for its own.
            kept = ownership.updated(record, data, topology, changes, purged=True)
            kept.spec = {"name": topology.name, "version": 1, "namespaces": [], "links": []}
            ownership.save(topology.name, kept, state_dir)
        return changes
    intent_saved: List[bool] = []  # the write-ahead record is saved once per run
    purge_planned: List[bool] = []

    def purge_stage(k: Kernel, pending: Pending) -> List[Change]:
        # Planned once per run: the verification pass must not take a new link that reuses a purged
        # name for the purged one.
        if not purge or purge_planned:
            return []
        purge_planned.append(True)
        return plan_purge_stage(k, topology, record, pending)

    def planner(k: Kernel, pending: Pending) -> List[Change]:
        changes = plan_topology(k, topology, False, record, pending)
        if not check_mode and not intent_saved:
            # Write-ahead: a run killed part-way must not leave its creations looking like objects
            # that existed before the topology (which teardown and purge never remove).
            _save_record(topology.name, ownership.updated(record, data, topology, changes, purge), record, state_dir)
            intent_saved.append(True)
        return changes

    kernel.table_snapshot = iptables_snapshot.load(snapshot_path)
    try:
        changes = converge_stages(kernel, [purge_stage, planner], check_mode, rollback=rollback)
        if not check_mode:
            _save_record(topology.name, ownership.updated(record, data, topology, changes, purge), record, state_dir)
            kernel.table_snapshot.save(kernel)
    finally:
        kernel.table_snapshot = None
    return changes


def _save_record(name: str, record: ownership.Record, loaded: Optional[ownership.Record], state_dir: str) -> None:
    if record != loaded:  # a run that changes nothing writes nothing
        ownership.save(name, record, state_dir)
