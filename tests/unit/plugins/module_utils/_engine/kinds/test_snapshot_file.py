"""The remembered-tables file is a cache: any content this version did not write is ignored (an empty
snapshot, the tables are read), never a traceback; but a file or directory someone else could have
written is an error naming it, never used."""

from __future__ import annotations

import json
import os
import stat
import threading
from typing import Any, Callable, List

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds import iptables_snapshot
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError

from ansible_collections.linuxnet.netns.tests.unit.plugins.module_utils._engine.kinds.test_snapshot_trust import (
    FORMS, SAVE, TOOLS, Generations, rules, with_forms)

DEEP = "[" * 100000 + "]" * 100000
NESTED = "[" * 500 + "]" * 500  # parses: the shape is what is wrong


def tables(data: Any) -> Any:
    return data["namespaces"]["netns a"]["tables"]


def chains(value: Any) -> Callable[[Any], None]:
    return lambda data: tables(data).__setitem__(SAVE, {"filter": value})


def entry(key: str, value: Any) -> Callable[[Any], None]:
    return lambda data: data["namespaces"]["netns a"].__setitem__(key, value)


def top(key: str, value: Any) -> Callable[[Any], None]:
    return lambda data: data.__setitem__(key, value)


def without(key: str, inside: Callable[[Any], Any] = lambda data: data) -> Callable[[Any], None]:
    return lambda data: inside(data).pop(key) and None


SHAPES = [
    ("generation a string", entry("generation", "74")),
    ("generation of one number", entry("generation", [7])),
    ("generation of three numbers", entry("generation", [7, 4, 1])),
    ("generation with a string", entry("generation", [7, "4"])),
    ("generation with a boolean", entry("generation", [True, 4])),
    ("generation with a float", entry("generation", [7, 4.0])),
    ("generation null", entry("generation", None)),
    ("generation missing", without("generation", lambda data: data["namespaces"]["netns a"])),
    ("tables a list", entry("tables", [])),
    ("tables of a family null", lambda data: tables(data).__setitem__(SAVE, None)),
    ("a table a mapping", chains({})),
    ("an empty chain entry", chains([[]])),
    ("a chain without policy and rules", chains([["INPUT"]])),
    ("a chain's rules a string", chains([["INPUT", "ACCEPT", "-j DROP"]])),
    ("a chain's rule a number", chains([["INPUT", "ACCEPT", [1]]])),
    ("a chain's name a number", chains([[1, "ACCEPT", []]])),
    ("a chain's policy a list", chains([["INPUT", ["ACCEPT"], []]])),
    ("a chain nested deep", chains([["INPUT", "ACCEPT", json.loads(NESTED)]])),
    ("an empty namespace entry", lambda data: data["namespaces"].__setitem__("netns a", {})),
    ("a namespace entry a list", lambda data: data["namespaces"].__setitem__("netns a", [])),
    ("a namespace key not ours", lambda data: data["namespaces"].__setitem__("a", data["namespaces"].pop("netns a"))),
    ("a namespace name escaping", lambda data: data["namespaces"].__setitem__("netns ../a", {"generation": [7, 4],
                                                                                             "tables": {}})),
    ("namespaces a list", top("namespaces", [])),
    ("namespaces missing", without("namespaces")),
    ("tools a list", top("tools", [])),
    ("a tool's identity a string", lambda data: data["tools"].__setitem__(SAVE, "x")),
    ("a tool's identity with a mapping", lambda data: data["tools"].__setitem__(SAVE, [{}])),
    ("canonical a list", top("canonical", [])),
    ("canonical family empty", lambda data: data["canonical"].__setitem__("ipv4", {})),
    ("canonical rules of three", lambda data: data["canonical"]["ipv4"].__setitem__("rules", [["f", "c", "r"]])),
    ("canonical rules numbers", lambda data: data["canonical"]["ipv4"].__setitem__("rules", [[1, 2, 3, 4]])),
    ("canonical tools a string", lambda data: data["canonical"]["ipv4"].__setitem__("tools", "x")),
    ("version true", top("version", True)),
    ("version a string", top("version", "1")),
    ("boot id a number", top("boot_id", 5)),
]


def assert_empty(snapshot: iptables_snapshot.Snapshot) -> None:
    assert snapshot.tables("a", SAVE, (7, 4)) is None
    assert not snapshot.remembered("a", SAVE)
    assert snapshot.canonical_forms("ipv4", TOOLS) == {}


@pytest.mark.parametrize("change", [s[1] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_a_wrong_shape_is_an_empty_snapshot(tmp_path: Any, change: Callable[[Any], Any]) -> None:
    path = with_forms(tmp_path)
    assert iptables_snapshot.load(path).canonical_forms("ipv4", TOOLS) == FORMS  # the file as written is used
    with open(path) as handle:
        data = json.load(handle)
    change(data)
    with open(path, "w") as handle:
        json.dump(data, handle)
    snapshot = iptables_snapshot.load(path)
    assert_empty(snapshot)
    snapshot.save(Generations({"a": (7, 4)}))  # and the next save neither fails nor keeps the garbage


TEXTS = [
    ("nested 100000 deep", DEEP),
    ("nested 100000 deep inside", '{"version": 1, "boot_id": "x", "tools": {}, "namespaces": %s}' % DEEP),
    ("objects nested deep", '{"a":' * 50000 + "1" + "}" * 50000),
    ("not UTF-8", b"\xff\xfe{\x00"),
    ("a huge number", '{"version": 1%s}' % ("0" * 5000)),
    ("NUL bytes", "\x00" * 100),
    ("a list", "[{}]"),
    ("null", "null"),
    ("a number", "1"),
    ("a string", '"x"'),
]


@pytest.mark.parametrize("content", [t[1] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_unparsable_text_is_an_empty_snapshot(tmp_path: Any, content: Any) -> None:
    path = tmp_path / "t.tables.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert_empty(iptables_snapshot.load(str(path)))


UNTRUSTED = [
    ("owned by another uid", lambda path: os.chown(path, 65534, -1), "t.tables.json", "owned by uid 65534"),
    ("mode 0666", lambda path: os.chmod(path, 0o666), "t.tables.json", "writable by others"),
    ("a symlink", lambda path: (os.rename(path, path + ".real"), os.symlink(path + ".real", path)), "t.tables.json",
     "is a symlink"),
    ("a FIFO", lambda path: (os.unlink(path), os.mkfifo(path, 0o600)), "t.tables.json", "is a FIFO"),
    ("its directory writable by others", lambda path: os.chmod(os.path.dirname(path), 0o777), "", "writable by others"),
    ("its directory another uid's", lambda path: os.chown(os.path.dirname(path), 65534, -1), "", "owned by uid 65534"),
]


@pytest.mark.parametrize("make,name,words", [u[1:] for u in UNTRUSTED], ids=[u[0] for u in UNTRUSTED])
def test_an_untrusted_file_is_an_error_naming_it(tmp_path: Any, make: Callable[[str], Any], name: str,
                                                 words: str) -> None:
    path = with_forms(tmp_path)
    make(path)
    outcome: List[Any] = []

    def load() -> None:
        try:
            outcome.append(iptables_snapshot.load(path))
        except NetnsError as exc:
            outcome.append(exc)

    loader = threading.Thread(target=load, daemon=True)  # a FIFO would block a plain open() forever
    loader.start()
    loader.join(10)
    assert outcome, "loading blocked"
    assert isinstance(outcome[0], NetnsError), outcome
    assert words in str(outcome[0])
    assert outcome[0].obj == os.path.join(os.path.dirname(path), name).rstrip("/")


def test_saved_into_a_private_directory_without_stale_temporaries(tmp_path: Any) -> None:
    path = str(tmp_path / "state" / "sub" / "t.tables.json")
    kernel = Generations({"a": (7, 4)})

    def save(rule: str) -> None:
        snapshot = iptables_snapshot.load(path)
        snapshot._tools[SAVE] = iptables_snapshot._identity(SAVE)
        table = iptables_snapshot._tables_from_json({"filter": [["INPUT", "ACCEPT", [rule]]]})
        snapshot.read("a", SAVE, snapshot.generation(kernel, "a"), table)
        snapshot.save(kernel)

    old = os.umask(0)
    try:
        save("-j ACCEPT")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(str(tmp_path / "state")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path + ".tmp.999999", "w") as handle:
        handle.write("left by a killed run")
    save("-j DROP")
    assert os.listdir(os.path.dirname(path)) == ["t.tables.json"]
    assert rules(iptables_snapshot.load(path).tables("a", SAVE, (7, 4))) == ["-j DROP"]


def test_remove_refuses_an_untrusted_directory(tmp_path: Any) -> None:
    path = with_forms(tmp_path)
    os.chmod(os.path.dirname(path), 0o777)
    with pytest.raises(NetnsError, match="writable by others"):
        iptables_snapshot.remove(path)
    assert os.path.exists(path)
    os.chmod(os.path.dirname(path), 0o700)
    iptables_snapshot.remove(path)
    assert not os.path.exists(path)
