"""The iptables snapshot's rules of trust, table-driven over (cookie, generation) histories.

The kernel is a stand-in here that only answers "what is the generation of this namespace";
tests/kernel/test_iptables_snapshot.py runs the same code against real namespaces."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds import iptables_snapshot
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.iptables_rules import parse_save

SAVE = "iptables-save"
BEFORE = parse_save("*filter\n:INPUT ACCEPT [0:0]\n[3:180] -A INPUT -p icmp -j ACCEPT\nCOMMIT\n")
AFTER = parse_save("*filter\n:INPUT ACCEPT [0:0]\n[3:180] -A INPUT -p icmp -j ACCEPT\n[0:0] -A INPUT -j DROP\nCOMMIT\n")


class Generations:
    """Answers Kernel.generation from a table the test changes as 'the kernel' moves on."""

    def __init__(self, now: Dict[Optional[str], Optional[Tuple[int, int]]], created: Set[str] = frozenset()) -> None:
        self.now = dict(now)
        self.created = set(created)

    def generation(self, ns: Optional[str]) -> Optional[Tuple[int, int]]:
        return self.now.get(ns)

    def exists(self, ns: Optional[str]) -> bool:
        return ns is None or ns in self.now


def trusting(path: str) -> iptables_snapshot.Snapshot:
    """An empty snapshot that already knows this host's iptables-save as the nf_tables one."""
    snapshot = iptables_snapshot.load(path)
    snapshot._tools[SAVE] = iptables_snapshot._identity(SAVE)
    return snapshot


def rules(tables: Optional[Dict[str, Any]]) -> Optional[List[str]]:
    return None if tables is None else tables["filter"].chains["INPUT"].texts()


# (what happens, steps, expected rules the snapshot then gives for namespace "a" at its generation)
# Steps: ("read", generation at start) | ("kernel", new generation) | ("restore", generation before,
# generation after) | ("created",).
CASES = [
    ("read, nothing since", [("read", (7, 4))], ["-p icmp -j ACCEPT"]),
    ("read, then another tool committed", [("read", (7, 4)), ("kernel", (7, 5))], None),
    ("namespace replaced under the same name", [("read", (7, 4)), ("kernel", (8, 4))], None),
    ("read, restored by this run", [("read", (7, 4)), ("restore", (7, 4), (7, 5))],
     ["-p icmp -j ACCEPT", "-j DROP"]),
    ("another tool committed right after this run's restore", [("read", (7, 4)), ("restore", (7, 4), (7, 6))], None),
    ("another commit came between the read and the restore", [("read", (7, 4)), ("restore", (7, 5), (7, 6))], None),
    ("created by this run, then restored", [("created",), ("restore", (7, 1), (7, 2))],
     ["-p icmp -j ACCEPT", "-j DROP"]),
    ("the generation counter wraps past 0", [("read", (7, 0xFFFFFFFF)), ("restore", (7, 0xFFFFFFFF), (7, 1))],
     ["-p icmp -j ACCEPT", "-j DROP"]),
    ("no cookie or generation on this kernel", [("read", None)], None),
]


@pytest.mark.parametrize("steps,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_trusted_only_at_the_generation_recorded(tmp_path: Any, steps: List[Tuple[Any, ...]],
                                                 expected: Optional[List[str]]) -> None:
    kernel = Generations({"a": None})
    snapshot = trusting(str(tmp_path / "t.tables.json"))
    for step in steps:
        if step[0] == "read":
            kernel.now["a"] = step[1]
            snapshot.read("a", SAVE, snapshot.generation(kernel, "a"), BEFORE)
        elif step[0] == "kernel":
            kernel.now["a"] = step[1]
        elif step[0] == "created":
            kernel.created.add("a")
        elif step[0] == "restore":
            kernel.now["a"] = step[1]
            snapshot.restoring(kernel, "a")
            kernel.now["a"] = step[2]
            snapshot.restored("a", SAVE, AFTER if "a" not in kernel.created else {"filter": AFTER["filter"]})
    assert rules(snapshot.tables("a", SAVE, kernel.generation("a"))) == expected


def saved(tmp_path: Any, generations: Dict[Optional[str], Tuple[int, int]]) -> Tuple[str, Generations]:
    """A snapshot file written by a run that read every namespace of ``generations``."""
    path = str(tmp_path / "t.tables.json")
    kernel = Generations(generations)
    snapshot = trusting(path)
    for ns in generations:
        snapshot.read(ns, SAVE, snapshot.generation(kernel, ns), BEFORE)
    snapshot.save(kernel)
    return path, kernel


def test_saved_and_loaded_with_old_counters(tmp_path: Any) -> None:
    path, _kernel = saved(tmp_path, {"a": (7, 4)})
    loaded = iptables_snapshot.load(path)
    assert rules(loaded.tables("a", SAVE, (7, 4))) == ["-p icmp -j ACCEPT"]
    assert loaded.remembered("a", SAVE)  # its counters are old: read afresh before a restore
    assert loaded.tables("b", SAVE, (9, 2)) is None


def test_a_run_that_learns_nothing_new_writes_nothing(tmp_path: Any) -> None:
    path, kernel = saved(tmp_path, {"a": (7, 4)})
    written = os.stat(path).st_mtime_ns
    second = iptables_snapshot.load(path)
    assert second.tables("a", SAVE, second.generation(kernel, "a")) is not None
    second.save(kernel)
    assert os.stat(path).st_mtime_ns == written


def test_namespaces_gone_or_not_looked_at_are_dropped(tmp_path: Any) -> None:
    path, kernel = saved(tmp_path, {"a": (7, 4), "b": (9, 2)})
    del kernel.now["b"]
    second = iptables_snapshot.load(path)
    second.generation(kernel, "a")
    second.save(kernel)
    with open(path) as handle:
        assert list(json.load(handle)["namespaces"]) == ["netns a"]


@pytest.mark.parametrize("content", ["", "{", '{"version": 1}', '{"version": 99, "boot_id": "x"}', "[]",
                                     '{"version": 1, "boot_id": "another boot", "tools": {}, "namespaces": {}}'])
def test_unusable_files_are_an_empty_snapshot(tmp_path: Any, content: str) -> None:
    path = tmp_path / "t.tables.json"
    path.write_text(content)
    snapshot = iptables_snapshot.load(str(path))
    assert snapshot.tables("a", SAVE, (7, 4)) is None


def test_another_binary_is_not_trusted(tmp_path: Any) -> None:
    """A snapshot taken with one iptables (backend, version) is not used with another."""
    path, _kernel = saved(tmp_path, {"a": (7, 4)})
    with open(path) as handle:
        data = json.load(handle)
    data["tools"][SAVE][-1] += 1  # another modification time: e.g. an upgrade
    with open(path, "w") as handle:
        json.dump(data, handle)
    assert iptables_snapshot.load(path).tables("a", SAVE, (7, 4)) is None


TOOLS = ("iptables-save", "iptables-restore")
FORMS = {("filter", "INPUT", "-p tcp --dport 22 -j ACCEPT"): "-p tcp -m tcp --dport 22 -j ACCEPT"}


def with_forms(tmp_path: Any) -> str:
    path, kernel = saved(tmp_path, {"a": (7, 4)})
    snapshot = iptables_snapshot.load(path)
    snapshot.generation(kernel, "a")
    snapshot.canonicalised("ipv4", TOOLS, FORMS)
    snapshot.save(kernel)
    return path


def rewritten(path: str, change: Any) -> str:
    with open(path) as handle:
        data = json.load(handle)
    change(data)
    with open(path, "w") as handle:
        json.dump(data, handle)
    return path


@pytest.mark.parametrize("what, change, expected", [
    ("as saved", lambda data: None, FORMS),
    ("another iptables-restore binary", lambda data: data["canonical"]["ipv4"]["tools"][1].__setitem__(-1, 1), {}),
    ("another iptables-save binary", lambda data: data["canonical"]["ipv4"]["tools"][0].__setitem__(0, "/x"), {}),
    ("another boot", lambda data: data.__setitem__("boot_id", "another boot"), {}),
    ("rules that are not (table, chain, rule, form)", lambda data: data["canonical"]["ipv4"].__setitem__("rules", [[1]]), {}),
    ("a file of an earlier version, without canonical forms", lambda data: data.pop("canonical"), {}),
])
def test_canonical_forms_are_trusted_with_the_binaries_that_made_them(tmp_path: Any, what: str, change: Any,
                                                                      expected: Dict[Any, str]) -> None:
    path = rewritten(with_forms(tmp_path), change)
    snapshot = iptables_snapshot.load(path)
    assert snapshot.canonical_forms("ipv4", TOOLS) == expected, what
    assert snapshot.canonical_forms("ipv6", ("ip6tables-save", "ip6tables-restore")) == {}


def test_only_the_rules_a_run_declares_are_kept(tmp_path: Any) -> None:
    path = with_forms(tmp_path)
    kernel = Generations({"a": (7, 4)})
    snapshot = iptables_snapshot.load(path)
    snapshot.generation(kernel, "a")
    snapshot.canonicalised("ipv4", TOOLS, {("filter", "INPUT", "-j DROP"): "-j DROP"})
    snapshot.save(kernel)
    assert iptables_snapshot.load(path).canonical_forms("ipv4", TOOLS) == {("filter", "INPUT", "-j DROP"): "-j DROP"}
