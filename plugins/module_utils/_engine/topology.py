# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A whole topology through the engine: namespaces -> links -> addresses -> routes -> policy rules
-> iptables rules.

Everything is planned before anything is applied (later planners see what earlier changes will
create through ``Pending``), so check mode predicts a whole topology on an empty host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Dict, List, Optional, Set

from . import ownership
from .converge import converge_stages
from .errors import NetnsError
from .kernel.session import Kernel
from .kinds import iptables_snapshot
from .kinds.address import address_spec, plan_addresses
from .kinds.device import plan_renames, plan_returns, with_placements
from .kinds.iptables import canonicalise, iptables_spec, plan_iptables, prefetch_tables
from .kinds.namespace import namespace_spec, plan_namespace, plan_sysctls, split_sysctls, try_sysctls
from .kinds.nftables import canonicalise as canonicalise_nftables
from .kinds.nftables import nftables_spec, plan_nftables
from .kinds.registry import kind_of_spec
from .kinds.route import plan_routes, route_spec
from .kinds.rule import plan_rules, rule_spec
from .kinds.veth import VethDeletion, plan_stranded_end, plan_veth, veth_spec
from .kinds.virtual_link import VirtualLinkParams, VirtualLinkSpec, plan_virtual_link
from .kinds.wireguard import plan_wireguard_absent
from .model import Change, Pending
from .spec import Endpoint, Topology, link_ends, parse_topology
from .system import trusted_files
from .system.host_lock import host_lock


# -- planning ------------------------------------------------------------------------------
def plan_purge_stage(kernel: Kernel, topology: Topology, owned: Optional[ownership.Record],
                     pending: Pending, snapshot: Optional[iptables_snapshot.Snapshot] = None) -> List[Change]:
    """What this topology created earlier and no longer declares. Applied as a stage of its own
    before the rest is planned: a declared veth may reuse the name of an end that goes (in check
    mode, where nothing is applied, ``pending`` tells the later planners which links go)."""
    if owned is None:
        return []
    declared_ns = {ns["name"] for ns in topology.namespaces}
    declared = _declared_pairs(topology)
    namespaces = [name for name in ownership.owned_namespaces(kernel, owned) if name not in declared_ns]
    # A veth is still declared only as the same pair: an end declared with another peer is a new pair.
    claims = {key: claim for key, claim in ownership.owned_links(kernel, owned).items()
              if frozenset([key] + ([claim.peer] if claim.peer is not None else [])) not in declared}
    pending.doomed_links |= set(claims)
    leftovers = ownership.retired_objects(owned, topology, set(namespaces))
    placed = {(item["netns"], item["name"]) for item in topology.links if item["type"] == "device"}
    undeclared = {key: placement for key, placement in ownership.owned_placements(kernel, owned).items()
                  if key not in placed}
    return (_plan_subobject_removal(kernel, leftovers, snapshot) + plan_returns(kernel, undeclared)
            + _plan_namespace_removal(kernel, namespaces)
            + _plan_link_removal(kernel, claims, set(namespaces), _link_order(topology, owned)))


def plan_stranded_pairs(kernel: Kernel, topology: Topology, owned: Optional[ownership.Record],
                        pending: Pending) -> List[Change]:
    """The deletion of each veth end this topology created (checked by identity) whose declared
    peer went with a namespace deleted by name under a running process: the pair is made anew by
    the plan that follows, in the namespace it re-creates. A stage of its own, before that plan."""
    if owned is None:
        return []
    declared = _declared_pairs(topology)
    changes: List[Change] = []
    for key, claim in sorted(owned.links.items(), key=str):
        if claim.type != "veth" or claim.peer is None or frozenset([key, claim.peer]) not in declared:
            continue
        stranded = plan_stranded_end(kernel, key, claim.peer, claim.identity[1] if claim.identity else None)
        # identity last: the usual pair, its peer where declared, costs a lookup and no identity read
        if stranded and ownership.owns_link(kernel, owned, key):
            pending.doomed_links.add(key)
            changes += stranded
    return changes


def _declared_pairs(topology: Topology) -> Set[frozenset]:
    """Each declared link as the set of its ends (a veth is declared only as the same pair)."""
    return {frozenset((end.netns, end.name) for end in link_ends(item)) for item in topology.links}


def plan_topology(kernel: Kernel, topology: Topology, purge: bool = False,
                  owned: Optional[ownership.Record] = None, pending: Optional[Pending] = None,
                  snapshot: Optional[iptables_snapshot.Snapshot] = None) -> List[Change]:
    """Every change that brings the kernel to ``topology`` (and, with ``purge``, first removes what
    this topology created earlier and no longer declares), in dependency order. ``snapshot``: the
    topology's tables file, which knows iptables tables and rule forms of earlier runs."""
    pending = pending if pending is not None else Pending()
    if owned is not None:
        pending.owns_link = lambda key: ownership.owns_link(kernel, owned, key)
    changes: List[Change] = []
    if purge:
        changes += plan_purge_stage(kernel, topology, owned, pending, snapshot)
    per_link_sysctls = []
    names_in: Dict[Optional[str], Set[str]] = {}  # one pass: a scan per namespace would be O(N^2)
    for end in topology.endpoints:
        names_in.setdefault(end.netns, set()).add(end.name)
    for namespace in topology.namespace_specs:
        own_links = frozenset(names_in.get(namespace.name, ()))
        now, after_links = split_sysctls(namespace, own_links)
        planned = plan_namespace(kernel, now, try_values=False)
        if any(c.kind == "netns" and c.action == "create" for c in planned):
            pending.namespaces.add(namespace.name)
        changes += planned
        per_link_sysctls.append((after_links, own_links))
    for link in with_placements(topology.link_specs, ownership.owned_placements(kernel, owned)):
        changes += kind_of_spec(link).plan(kernel, link, pending)
    # The keys of a declared link exist once it does: set after the links, before its addresses.
    for later, own_links in per_link_sysctls:
        changes += plan_sysctls(kernel, later, own_links, try_values=False)
    try_sysctls(changes)
    for scope in topology.scope_specs:
        for addresses in scope.addresses:
            changes += plan_addresses(kernel, addresses, pending)
    for scope in topology.scope_specs:
        if scope.routes is not None:
            changes += plan_routes(kernel, scope.routes, pending)
    for scope in topology.scope_specs:
        if scope.rules is not None:
            changes += plan_rules(kernel, scope.rules, pending)
    rule_specs = [table for scope in topology.scope_specs for table in scope.iptables]
    if rule_specs:
        canonicalise(rule_specs, snapshot)
        prefetch_tables(kernel, [(spec.netns, spec.ip_version) for spec in rule_specs], snapshot)
        for spec in rule_specs:
            changes += plan_iptables(kernel, spec, pending, snapshot)
    nft_specs = [scope.nftables for scope in topology.scope_specs if scope.nftables is not None]
    if nft_specs:
        canonicalise_nftables([table for spec in nft_specs for table in spec.tables])  # all refusals first
        for nft_spec in nft_specs:
            changes += plan_nftables(kernel, nft_spec, pending)
    return changes


def plan_teardown(kernel: Kernel, topology: Topology, owned: Optional[ownership.Record] = None) -> List[Change]:
    """Remove everything of ``topology`` in reverse order: the namespaces and links it created
    (known by identity, declared or retired), and the declared (and retired) addresses, routes and
    rules of namespaces it did not create, which stay.

    Namespaces go before root-namespace links: deleting a namespace takes its veth ends with it,
    and many namespace deletions settle together far faster than one link deletion after another."""
    doomed_list = ownership.owned_namespaces(kernel, owned)
    order = [ns["name"] for ns in reversed(topology.namespaces)]
    doomed_list.sort(key=lambda name: order.index(name) if name in order else len(order))
    doomed = set(doomed_list)
    claims = ownership.owned_links(kernel, owned)
    # Addresses on links that go (with their namespace, or deleted as ours) go with them.
    dying = {Endpoint(*key) for key in claims} | {
        end for item in topology.links if _lives_only_in(item, doomed) for end in link_ends(item)}
    changes: List[Change] = []
    for scope in reversed(topology.scope_specs):
        if scope.netns in doomed:
            continue
        if scope.nftables is not None:
            changes += plan_nftables(kernel, dataclasses.replace(scope.nftables, state="absent"), Pending())
        tables = [dataclasses.replace(table, state="absent") for table in scope.iptables]
        if tables:
            canonicalise(tables)
        for table in tables:
            changes += plan_iptables(kernel, table, Pending())
        if scope.rules is not None:
            changes += plan_rules(kernel, dataclasses.replace(scope.rules, state="absent"), Pending())
        if scope.routes is not None:
            changes += plan_routes(kernel, dataclasses.replace(scope.routes, state="absent"), Pending())
        for addresses in scope.addresses:
            if Endpoint(scope.netns, addresses.dev) not in dying:
                changes += plan_addresses(kernel, dataclasses.replace(addresses, state="absent"), Pending())
    if owned is not None:
        changes += _plan_subobject_removal(kernel, ownership.retired_objects(owned, topology, doomed))
    # before any namespace goes: deleting it would destroy a veth inside, and a NIC may not come back
    changes += plan_returns(kernel, ownership.owned_placements(kernel, owned))
    changes += _plan_namespace_removal(kernel, doomed_list)
    for ns in reversed(topology.namespaces):  # gone already (deleted by hand): our resolv.conf of it goes
        if not kernel.exists(ns["name"]):
            changes += plan_namespace(kernel, namespace_spec(ns["name"], "absent"))
    return changes + _plan_link_removal(kernel, claims, doomed, _link_order(topology, owned))


def _lives_only_in(item: Dict[str, Any], namespaces: set) -> bool:
    """True when deleting ``namespaces`` removes this link anyway (an end of it lives in one)."""
    return any(end.netns is not None and end.netns in namespaces for end in link_ends(item))


def _plan_subobject_removal(kernel: Kernel, leftovers: Dict[str, List[Any]],
                            snapshot: Optional[iptables_snapshot.Snapshot] = None) -> List[Change]:
    """Remove addresses, routes, policy rules and iptables rules an earlier spec declared, iptables
    rules first."""
    changes: List[Change] = []
    by_netns: Dict[Optional[str], List[Dict[str, Any]]] = {}
    for netns, table in leftovers.get("nftables", []):
        by_netns.setdefault(netns, []).append(dict(table, definition=""))
    for netns, tables in by_netns.items():
        changes += plan_nftables(kernel, nftables_spec(netns, tables, "retired nftables", state="absent"), Pending())
    for netns, table in leftovers.get("iptables", []):
        spec = iptables_spec(netns, table["ip_version"], table["table"], table["chains"], state="absent")
        canonicalise([spec], snapshot)
        changes += plan_iptables(kernel, spec, Pending(), snapshot)
    for netns, rule in leftovers.get("rules", []):
        changes += plan_rules(kernel, rule_spec(netns, [rule], state="absent"), Pending())
    for netns, route in leftovers.get("routes", []):
        changes += plan_routes(kernel, route_spec(netns, [route], state="absent"), Pending())
    for netns, item in leftovers.get("addresses", []):
        changes += plan_addresses(kernel, address_spec(netns, item["dev"], [item["address"]], state="absent"), Pending())
    return changes


def _plan_namespace_removal(kernel: Kernel, names: List[str]) -> List[Change]:
    """Delete namespaces this topology created; each deletion carries the identity it was planned on."""
    changes: List[Change] = []
    for name in names:
        for change in plan_namespace(kernel, namespace_spec(name, "absent")):
            if change.kind == "netns":
                identity = kernel.identity(name)
                change = dataclasses.replace(change, params=dataclasses.replace(change.params, identity=identity))
            changes.append(change)
    return changes


def _link_order(topology: Topology, record: Optional[ownership.Record]) -> List[ownership.LinkKey]:
    """Links in the order they are removed: the reverse of the order they are made in."""
    items = list(reversed(topology.links)) + (list(reversed(record.topology().links)) if record else [])
    return list(dict.fromkeys((end.netns, end.name) for item in items for end in link_ends(item)))


def _plan_link_removal(kernel: Kernel, claims: Dict[ownership.LinkKey, ownership.LinkClaim], doomed: set,
                       order: List[ownership.LinkKey]) -> List[Change]:
    """Delete the links this topology created (``claims``, checked by identity) that do not go with
    a ``doomed`` namespace anyway; each deletion names the ifindex it was planned on."""
    changes: List[Change] = []
    handled: set = set()
    for key in sorted(claims, key=lambda k: order.index(k) if k in order else len(order)):
        claim = claims[key]
        ends = [key] + ([claim.peer] if claim.peer is not None else [])
        if key in handled or any(ns is not None and ns in doomed for ns, _name in ends):
            continue
        handled.update(ends)
        try:
            if claim.type == "veth" and claim.peer is not None:
                spec: Any = veth_spec(key[1], claim.peer[1], netns=key[0], peer_netns=claim.peer[0], state="absent")
                planned = plan_veth(kernel, spec, Pending())
            elif claim.type == "wireguard":
                planned = plan_wireguard_absent(kernel, key[0], key[1])
            else:
                planned = plan_virtual_link(kernel, VirtualLinkSpec(claim.type, key[0], key[1], state="absent"),
                                            Pending())
        except NetnsError:
            continue  # not as this topology made it (e.g. its veth peer moved away): left alone
        for change in planned:
            params = change.params
            if not isinstance(params, (VethDeletion, VirtualLinkParams)):
                raise NetnsError("internal error: its removal planned " + change.summary(), obj="link " + key[1])
            deleted = claims.get((params.ns, params.name))
            if deleted is not None and deleted.identity is not None:
                change = dataclasses.replace(change, params=dataclasses.replace(params, index=deleted.identity[1]))
            changes.append(change)
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
    """Validate ``data`` in full, then, under the host lock, read what the topology owns, bring the
    kernel to it (or tear it down) and record what it owns now."""
    topology = parse_topology(data)
    with host_lock(shared=check_mode):
        record = ownership.load(topology.name, state_dir)
        if record is not None:
            record.parsed_as(data, topology)
        run = _Run(kernel, data, topology, record, check_mode, state_dir)
        if state == "absent":
            trusted_files.check_removable(run.snapshot_path)  # an untrusted one stops the run before any change
            stages = [lambda k, _pending: plan_teardown(k, topology, record)]
        else:
            stages = [run.purge_stage if purge else run.nothing, run.stranded_stage, run.plan_ahead]
            run.snapshot = iptables_snapshot.load(run.snapshot_path)
        try:
            changes = converge_stages(kernel, stages, check_mode, rollback=rollback)
        except NetnsError as exc:
            if not check_mode:
                run.record_after_failure(exc, purge)
            raise
        if not check_mode:
            run.record_after(changes, state == "absent", purge)
    return changes


class _Run:
    """One apply or teardown of a topology: its stages and what it records of them."""

    def __init__(self, kernel: Kernel, data: Dict[str, Any], topology: Topology,
                 record: Optional[ownership.Record], check_mode: bool, state_dir: str) -> None:
        self.kernel = kernel
        self.data = data
        self.topology = topology
        self.record = record
        self.check_mode = check_mode
        self.state_dir = state_dir
        self.snapshot_path = iptables_snapshot.snapshot_path(topology.name, state_dir)
        self.snapshot: Optional[iptables_snapshot.Snapshot] = None  # of a run that applies: its tables file
        self.purge_planned = False
        self.ahead_saved = False
        self.ahead: Optional[ownership.Record] = None

    @staticmethod
    def nothing(_kernel: Kernel, _pending: Pending) -> List[Change]:
        return []

    def purge_stage(self, kernel: Kernel, pending: Pending) -> List[Change]:
        # Planned once per run: the verification pass must not take a new link that reuses a purged
        # name for the purged one.
        if self.purge_planned:
            return []
        self.purge_planned = True
        return plan_purge_stage(kernel, self.topology, self.record, pending, self.snapshot)

    def stranded_stage(self, kernel: Kernel, pending: Pending) -> List[Change]:
        return plan_stranded_pairs(kernel, self.topology, self.record, pending) + plan_renames(
            kernel, self.topology.link_specs, ownership.owned_placements(kernel, self.record), pending)

    def plan_ahead(self, kernel: Kernel, pending: Pending) -> List[Change]:
        # the verification pass finds the devices this run moved by the placements claimed ahead
        changes = plan_topology(kernel, self.topology, False, self.ahead or self.record, pending, self.snapshot)
        if not self.check_mode and not self.ahead_saved:
            # Write-ahead: what this run creates is claimed before it exists, so that a run killed
            # part-way leaves its creations recorded as its own for the next run to finish.
            ahead = ownership.claimed(self.record or ownership.empty(self.data), changes)
            if ahead != self.record:
                ownership.save(self.topology.name, ahead, self.state_dir)
            self.ahead_saved = True
            self.ahead = ahead
        return changes

    def record_after(self, changes: List[Change], torn_down: bool, purged: bool) -> None:
        if torn_down:  # nothing of the topology is left: neither is its record or its tables
            ownership.remove(self.topology.name, self.state_dir)
            iptables_snapshot.remove(self.snapshot_path)
            return
        record = self.record
        if changes or record is None or record.spec != self.data or record.has_claims_to_settle():
            self._save(ownership.settled(record or ownership.empty(self.data), self.data, self.topology,
                                         self.kernel, changes, purged))
        snapshot = self.snapshot
        if snapshot is None:  # every run that applies loads its tables file before planning
            raise NetnsError("internal error: the tables file was not loaded", obj="topology " + self.topology.name)
        snapshot.save(self.kernel)

    def record_after_failure(self, failure: NetnsError, purged: bool) -> None:
        """A failed run leaves the record as before it, except for what still stands of its changes."""
        standing = list(failure.standing)
        if not standing:
            if self.record is None:
                ownership.remove(self.topology.name, self.state_dir)
            else:
                ownership.save(self.topology.name, self.record, self.state_dir)
            return
        self.kernel.cache.invalidate()
        base = self.record or ownership.empty(self.data)
        self._save(ownership.settled(base, self.data, self.topology, self.kernel, standing, purged))

    def _save(self, record: ownership.Record) -> None:
        if record != self.record:  # a run that changes nothing writes nothing
            ownership.save(self.topology.name, record, self.state_dir)
