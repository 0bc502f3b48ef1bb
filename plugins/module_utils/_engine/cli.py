# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``linuxnet-netns``: the boot-time program. Same engine as the modules, no Ansible on the host.

    linuxnet-netns apply FILE      converge the kernel to FILE (what the unit runs at boot)
    linuxnet-netns check FILE      exit 0 when the kernel matches FILE, 1 when it differs (lists each
                                   differing object with its state now and as declared), 2 on an error
    linuxnet-netns teardown FILE   remove what FILE declares (and this topology created)
    linuxnet-netns show [FILE]     the live state of FILE's namespaces (all without FILE), as
                                   the netns_info module returns it (JSON)
    linuxnet-netns graph [FILE]    FILE's topology as Mermaid or Graphviz DOT; with --live, or
                                   without FILE, the live state
"""

from __future__ import annotations

import argparse
import copy
import errno
import json
import shutil
import sys
import time
import traceback
from typing import Any, Dict, List, Optional, Tuple

from .errors import NetnsError, errno_of
from .kernel import nftables
from .kernel.library import PYROUTE2_IMPORT_ERROR
from .kernel.session import Kernel
from .kinds.iptables import TOOLS
from .kinds.link import links
from .model import Change
from .ownership import STATE_DIR
from .report.graph import RENDERERS
from .report.info import gather, spec_from_info
from .spec import parse_topology
from .system import trusted_files
from .topology import converge_topology, summary
from .validation import ip_address, ip_interface

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
# A topology nests 8 levels (topology, namespaces, a namespace, iptables, a table, chains, a chain, rules).
MAX_NESTING = 32


def load_spec(path: str) -> Dict[str, Any]:
    """The saved topology: one JSON object in a trusted file (root's, writable by no one else, not a
    symlink, in such a directory). A missing, untrusted or corrupt file is a one-line error that
    touches nothing."""
    raw = trusted_files.read_trusted_bytes(path)
    if raw is None:
        raise NetnsError("topology file does not exist", obj=path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise NetnsError("topology file is nested too deeply", obj=path) from None
    except ValueError as exc:
        raise NetnsError("topology file is not valid JSON: %s" % exc, obj=path) from None
    if not isinstance(data, dict):
        raise NetnsError("topology file must be a mapping (a JSON object), not %s" % _json_type(data), obj=path)
    if _nesting(data) > MAX_NESTING:
        raise NetnsError("topology file is nested too deeply (more than %d levels)" % MAX_NESTING, obj=path)
    parse_topology(data)  # validates in full before anything else happens
    return data


def _json_type(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _nesting(value: Any) -> int:
    """How deep lists and objects nest in ``value``, counted without recursion (up to MAX_NESTING + 1)."""
    deepest = 0
    pending = [(value, 1)]
    while pending and deepest <= MAX_NESTING:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in children)
    return deepest


def root_parent(item: Dict[str, Any]) -> Optional[str]:
    """The root-namespace device a link is made on: a vlan's or macvlan's parent, a vxlan's dev."""
    if item.get("type") in ("vlan", "macvlan") and not item.get("parent_netns"):
        return item["parent"]
    if item.get("type") == "vxlan" and not item.get("underlay_netns"):
        return item.get("dev")
    return None


def wait_for_parents(kernel: Kernel, data: Dict[str, Any], timeout: float) -> List[str]:
    """Wait (bounded) for the root-namespace devices links are made on (vlan/macvlan parents, vxlan
    devs), e.g. a NIC that udev is still bringing up at boot, and for the host devices (``type: device``)
    the topology moves; returns those that did not appear (a host device as ``device NAME in NETNS``)."""
    parents = sorted({root_parent(item) for item in data.get("links") or [] if root_parent(item)})
    devices = [item for item in data.get("links") or [] if _is_device(item)]
    deadline = time.monotonic() + timeout
    while True:
        kernel.cache.invalidate()
        missing = [name for name in parents if name not in links(kernel, None)]
        missing += [_device_label(item) for item in devices if not _device_present(kernel, item)]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(0.2)


def _is_device(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "device" and isinstance(item.get("match"), dict)


def _device_label(item: Dict[str, Any]) -> str:
    return "device %s in %s" % (item.get("name"), item.get("netns"))


def _device_present(kernel: Kernel, item: Dict[str, Any]) -> bool:
    """In the root namespace as matched, or in its namespace already (by MAC, or under its name there)."""
    match, netns = item["match"], item.get("netns")
    inside = list(links(kernel, netns).values()) if isinstance(netns, str) and kernel.exists(netns) else []
    if "mac" in match:
        mac = str(match["mac"]).lower()
        return any((link.mac or "").lower() == mac for link in list(links(kernel, None).values()) + inside)
    return match.get("name") in links(kernel, None) or any(link.name == item.get("name") for link in inside)


def without_parents(data: Dict[str, Any], missing: List[str]) -> Tuple[Dict[str, Any], List[str]]:
    """``data`` without the links on the ``missing`` root devices (and the missing host devices), and
    what sits on those links (bridge membership, addresses, routes on them or through gateways on
    their subnets), so that everything independent of the missing devices can still be restored.
    Returns the names skipped."""
    reduced = copy.deepcopy(data)
    dropped = [item for item in reduced.get("links") or []
               if root_parent(item) in missing or _is_device(item) and _device_label(item) in missing]
    gone = {(item.get("netns"), item["name"]) for item in dropped}
    dropped += [item for item in reduced.get("links") or [] if item.get("type") in ("vlan", "macvlan")
                and (item.get("parent_netns"), item.get("parent")) in gone]  # a macvlan on a missing host device
    gone |= {(item.get("netns"), item["name"]) for item in dropped}
    reduced["links"] = [item for item in reduced.get("links") or [] if item not in dropped]
    for item in reduced["links"]:
        if item.get("type") == "bridge":
            item["ports"] = [p for p in item.get("ports") or [] if (item.get("netns"), p) not in gone]
    sections = [(None, reduced.get("host") or {})] + [(ns["name"], ns) for ns in reduced.get("namespaces") or []]
    for netns, section in sections:
        lost = [a for a in section.get("addresses") or [] if (netns, a["dev"]) in gone]
        networks = [ip_interface(a["address"]).network for a in lost]
        section["addresses"] = [a for a in section.get("addresses") or [] if a not in lost]
        section["routes"] = [r for r in section.get("routes") or []
                             if (netns, r.get("dev")) not in gone
                             and not (r.get("via") and any(ip_address(r["via"]) in n for n in networks
                                                           if n.version == ip_address(r["via"]).version))]
    return reduced, sorted("%s in %s" % (name, netns or "the root namespace") for netns, name in gone)


def missing_iptables(data: Dict[str, Any]) -> List[str]:
    """The iptables programs this host lacks for the rule families ``data`` declares (sorted)."""
    families = {table.get("ip_version", "ipv4") for _netns, section in _sections(data)
                for table in section.get("iptables") or []}
    return sorted(tool for family in families for tool in TOOLS[family] if shutil.which(tool) is None)


def without_iptables(data: Dict[str, Any], missing: List[str]) -> Tuple[Dict[str, Any], List[str]]:
    """``data`` without the iptables tables of the families whose programs are ``missing``, so that
    every namespace, link, address and route can still be restored. Returns the tables skipped."""
    lacking = {family for family, tools in TOOLS.items() if set(tools) & set(missing)}
    reduced = copy.deepcopy(data)
    skipped = []
    for netns, section in _sections(reduced):
        tables = section.get("iptables") or []
        gone = [table for table in tables if table.get("ip_version", "ipv4") in lacking]
        if gone:
            section["iptables"] = [table for table in tables if table not in gone]
        skipped += ["%s %s in %s" % (table.get("ip_version", "ipv4"), table.get("table", "filter"),
                                     "netns %s" % netns if netns else "the root namespace") for table in gone]
    return reduced, skipped


def _sections(data: Dict[str, Any]) -> List[Tuple[Optional[str], Dict[str, Any]]]:
    host = data.get("host")
    return ([(None, host)] if isinstance(host, dict) else []) + [(ns["name"], ns) for ns in data.get("namespaces") or []]


def _print_changes(changes: List[Change], stream: Any) -> None:
    for change in changes:
        stream.write("%-7s %-8s %s\n" % (change.action, change.kind, change.key))
        if change.before is not None or change.after is not None:
            stream.write("        before: %s\n        after:  %s\n"
                         % (json.dumps(change.before, sort_keys=True), json.dumps(change.after, sort_keys=True)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linuxnet-netns", description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n")[1])
    parser.add_argument("command", choices=["apply", "check", "teardown", "show", "graph"])
    parser.add_argument("file", nargs="?", help="saved topology (JSON), e.g. /etc/linuxnet-netns/NAME.json")
    parser.add_argument("--state-dir", default=STATE_DIR, help="where ownership records live")
    parser.add_argument("--purge", action="store_true", help="apply: also remove what the topology no longer declares")
    parser.add_argument("--wait-parents", type=float, default=30.0, metavar="SECONDS",
                        help="apply: how long to wait for physical parent devices (default 30)")
    parser.add_argument("--keep-partial", dest="rollback", action="store_false",
                        help="apply, teardown: when a change fails, keep what this run did instead of undoing it "
                             "(the boot unit does: at boot, what could be restored is better than nothing)")
    parser.add_argument("--rollback", dest="rollback", action="store_true",
                        help="apply, teardown: when a change fails, undo this run's changes (the default)")
    parser.set_defaults(rollback=True)
    parser.add_argument("--json", action="store_true", help="apply, check, teardown: print changes as JSON")
    parser.add_argument("--format", choices=sorted(RENDERERS), default="mermaid", help="graph: output language")
    parser.add_argument("--live", action="store_true", help="graph: draw the kernel's state of FILE's namespaces")
    return parser


def run(argv: Optional[List[str]] = None) -> int:
    """The program: its exit code (EXIT_OK, EXIT_DRIFT for check, EXIT_ERROR)."""
    return _run_reporting(argv)[0]


def _run_reporting(argv: Optional[List[str]]) -> Tuple[int, Optional[int]]:
    """(exit code, errno of the failure if there was one). Every failure is one line and EXIT_ERROR,
    an unexpected exception too: Python's traceback would exit 1, which check means as drift."""
    try:
        return _run(argv), None
    except NetnsError as exc:
        _error(str(exc))
        return EXIT_ERROR, exc.errno
    except Exception as exc:  # a bug or a failure the engine does not know: one line all the same
        where = traceback.extract_tb(exc.__traceback__)[-1]
        _error("unexpected %s: %s (at %s:%d in %s)" % (type(exc).__name__, exc, where.filename.rsplit("/", 1)[-1],
                                                       where.lineno, where.name))
        return EXIT_ERROR, errno_of(exc)


def _error(text: str) -> None:
    sys.stderr.write("linuxnet-netns: %s\n" % text)


def without_nftables(data: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """``data`` without its nftables tables (for a host that has neither python3-nftables nor nft).
    Returns the tables skipped."""
    reduced = copy.deepcopy(data)
    skipped = []
    for netns, section in _sections(reduced):
        skipped += ["%s %s in %s" % (table.get("family", "inet") if isinstance(table, dict) else "?",
                                     table.get("table") if isinstance(table, dict) else "?",
                                     "netns %s" % netns if netns else "the root namespace")
                    for table in section.get("nftables") or []]
        section.pop("nftables", None)
    return reduced, skipped


def _run(argv: Optional[List[str]]) -> int:
    parser = _parser()
    args = parser.parse_intermixed_args(argv)  # the unit puts options before FILE
    if args.file is None and args.command in ("apply", "check", "teardown"):
        parser.error("%s needs the topology FILE" % args.command)
    if PYROUTE2_IMPORT_ERROR is not None and not (args.command == "graph" and not args.live and args.file):
        raise NetnsError("the Python library pyroute2 is not installed")
    data = load_spec(args.file) if args.file else None
    if args.command in ("show", "graph"):
        return _describe(args, data)
    # Without iptables (or ip6tables) a boot still restores everything else, like without a parent.
    tools = missing_iptables(data) if args.command in ("apply", "check") else []
    declared, skipped_tables = without_iptables(data, tools) if tools else (data, [])
    skipped_nft: List[str] = []
    # Without nftables (no binding, no nft) likewise: everything but the nftables tables.
    if (args.command in ("apply", "check") and any(section.get("nftables") for _netns, section in _sections(declared))
            and not nftables.available()):
        declared, skipped_nft = without_nftables(declared)
    parents: List[str] = []
    with Kernel() as kernel:
        if args.command == "apply":
            parents = wait_for_parents(kernel, declared, args.wait_parents)
        changes = converge_topology(
            kernel, without_parents(declared, parents)[0] if parents else declared,
            state="absent" if args.command == "teardown" else "present",
            purge=args.purge and not parents and not tools and not skipped_nft, check_mode=args.command == "check",
            state_dir=args.state_dir, rollback=args.rollback)
    _report(args, changes)
    if parents:
        what = "host or parent" if any(name.startswith("device ") for name in parents) else "parent"
        _error("%s device(s) %s did not appear within %gs; applied everything else, skipped: %s"
               % (what, ", ".join(parents), args.wait_parents, ", ".join(without_parents(declared, parents)[1])))
    if tools:
        _error("%s not found; %s everything else, skipped the iptables rules of: %s"
               % (", ".join(tools), "applied" if args.command == "apply" else "checked", ", ".join(skipped_tables)))
    if skipped_nft:
        _error("neither python3-nftables nor nft found; %s everything else, skipped the nftables tables: %s"
               % ("applied" if args.command == "apply" else "checked", ", ".join(skipped_nft)))
    if parents or tools or skipped_nft:
        return EXIT_ERROR
    if args.command == "check" and changes:
        return EXIT_DRIFT
    return EXIT_OK


def _report(args: argparse.Namespace, changes: List[Change]) -> None:
    if args.json:
        json.dump({"changed": bool(changes), "summary": summary(changes),
                   "changes": [c.as_dict() for c in changes]}, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        _print_changes(changes, sys.stdout)
        verb = {"apply": "applied", "teardown": "removed", "check": "differ"}[args.command]
        sys.stdout.write("%d change(s) %s: %s\n" % (len(changes), verb, json.dumps(summary(changes), sort_keys=True)))


def _describe(args: argparse.Namespace, data: Optional[Dict[str, Any]]) -> int:
    """show: the live state as JSON; graph: a spec, or the live state, drawn."""
    if args.command == "graph" and data is not None and not args.live:
        sys.stdout.write(RENDERERS[args.format](data))
        return EXIT_OK
    names = None if data is None else [ns["name"] for ns in data.get("namespaces", [])]
    with Kernel() as kernel:
        info = gather(kernel, names, with_iptables=True)
    spec = spec_from_info(info, data["name"] if data else "live")
    if args.command == "show":
        json.dump(dict(info, spec=spec), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(RENDERERS[args.format](spec))
    return EXIT_OK


class HeldUnraisable:
    """``sys.unraisablehook`` for one run: Python reports an exception in a finaliser as an
    "Exception ignored" traceback, e.g. asyncio's for the event loop of a pyroute2 socket whose
    creation ran out of descriptors. Such reports are held (as text) until the run ends, then
    dropped if it failed for lack of descriptors (its error line says so), else printed."""

    def __init__(self) -> None:
        self.held: List[str] = []
        self.drop: Optional[bool] = None  # None while the run goes on

    def __call__(self, unraisable: Any) -> None:
        if self.drop:
            return
        text = "%s: %r\n" % (unraisable.err_msg or "Exception ignored in", unraisable.object) + "".join(
            traceback.format_exception(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback))
        if self.drop is None:
            self.held.append(text)
        else:
            sys.stderr.write(text)

    def settle(self, failure: Optional[int]) -> None:
        self.drop = failure in (errno.EMFILE, errno.ENFILE)
        if not self.drop:
            sys.stderr.write("".join(self.held))
        self.held = []


def main() -> int:
    """One run of the restore program; its exit status, for the caller to exit with."""
    held = HeldUnraisable()
    sys.unraisablehook = held
    code, failure = _run_reporting(None)
    held.settle(failure)
    return code
