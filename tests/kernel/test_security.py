"""Files the engine writes: root-owned, the right modes, written atomically (no temporary files left),
never outside /run/netns, /etc/netns and the state directory."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from helpers import COLLECTIONS, MODULE_PYTHON, normalised, restore_program, run, run_module, save_spec


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_modes_and_no_temporaries(prefix: str, tmp_path: Any) -> None:
    state_dir = str(tmp_path / "state")
    spec = {"name": prefix + "sec", "namespaces": [{"name": prefix + "a", "nameservers": ["192.0.2.53"], "iptables": [
        {"table": "filter", "chains": [{"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]}]}]}
    assert not run_module("topology", {"topology": spec, "state_dir": state_dir}).get("failed")
    record = os.path.join(state_dir, prefix + "sec.owned.json")
    tables = os.path.join(state_dir, prefix + "sec.tables.json")
    resolv = "/etc/netns/%sa/resolv.conf" % prefix
    assert mode_of(state_dir) == 0o700 and mode_of(record) == 0o600 and os.stat(record).st_uid == 0
    assert mode_of(tables) == 0o600 and os.stat(tables).st_uid == 0
    assert mode_of(resolv) == 0o644 and os.stat(resolv).st_uid == 0
    assert mode_of("/run/netns/" + prefix + "a") & 0o022 == 0  # nobody but root writes a namespace file
    for directory in (state_dir, os.path.dirname(resolv)):
        assert not [f for f in os.listdir(directory) if ".tmp." in f]
    json.loads(open(record).read())  # complete, valid
    json.loads(open(tables).read())
    run_module("topology", {"topology": spec, "state": "absent", "state_dir": state_dir})
    assert not os.path.exists(os.path.dirname(resolv))
    assert not os.path.exists(tables)  # a cache of the topology's tables: gone with it


def test_a_planted_symlink_is_not_followed(prefix: str, tmp_path: Any) -> None:
    """Writing goes through NAME.tmp.PID, created with O_EXCL|O_NOFOLLOW in the directory opened once:
    a symlink planted at that name (or left there) is removed as a stale temporary, never written
    through, and a symlink at the target itself is replaced, not followed."""
    target = tmp_path / "victim"
    target.write_text("keep\n")
    directory = tmp_path / "d"
    directory.mkdir(mode=0o700)
    code = ("import os, sys\n"
            "from ansible_collections.linuxnet.netns.plugins.module_utils._engine.system import trusted_files\n"
            "d = sys.argv[1]\n"
            "os.symlink(sys.argv[2], os.path.join(d, 'f.tmp.%d' % os.getpid()))\n"
            "os.symlink(sys.argv[2], os.path.join(d, 'g'))\n"
            "trusted_files.write_file_atomically(os.path.join(d, 'f'), 'x\\n')\n"
            "trusted_files.write_file_atomically(os.path.join(d, 'g'), 'y\\n')\n")
    subprocess.run([MODULE_PYTHON, "-c", code, str(directory), str(target)], capture_output=True, text=True,
                   env=dict(os.environ, PYTHONPATH=COLLECTIONS), check=True)
    assert target.read_text() == "keep\n"
    assert sorted(os.listdir(str(directory))) == ["f", "g"]
    assert (directory / "f").read_text() == "x\n" and (directory / "g").read_text() == "y\n"
    assert not os.path.islink(str(directory / "g"))


# -- state files and their directory: trusted only when root's and writable by no one else -----
RULE = "-p tcp --dport 22 -j ACCEPT"


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: subprocess.run kills its child when the alarm interrupts it."""
    def expired(_signum: int, _frame: Any) -> None:
        raise TimeoutError("still running after %ds" % seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def topology(prefix: str, *names: str, nameservers: Optional[List[str]] = None,
             rule: str = RULE) -> Dict[str, Any]:
    namespaces: List[Dict[str, Any]] = [
        {"name": prefix + name, "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": [rule]}]}]}
        for name in names]
    if nameservers is not None:
        namespaces[0]["nameservers"] = nameservers
    return {"name": prefix + "sec", "namespaces": namespaces}


def attempt(how: str, spec: Dict[str, Any], state_dir: str, tmp_path: Any) -> Tuple[bool, str]:
    """(whether it failed, its message) of one run: 'module apply|check|teardown' or 'program ...'."""
    runner, command = how.split()
    with deadline(60):
        if runner == "module":
            result = run_module("topology", {"topology": spec, "state_dir": state_dir,
                                             "state": "absent" if command == "teardown" else "present"},
                                check=command == "check")
            return bool(result.get("failed")), result.get("msg", "")
        path = save_spec(tmp_path, spec, "%s.json" % spec["name"])[0]
        proc = restore_program(command, path, "--state-dir", state_dir)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode == 2, proc.stderr


RUNS = ("module apply", "module check", "module teardown", "program apply", "program check", "program teardown")


def applied(prefix: str, tmp_path: Any, **options: Any) -> Tuple[Dict[str, Any], str]:
    """Namespace a applied with a trusted state directory; returns a topology that would change the
    machine (a second namespace) and the state directory."""
    state_dir = str(tmp_path / "state")
    failed, message = attempt("module apply", topology(prefix, "a", **options), state_dir, tmp_path)
    assert not failed, message
    return topology(prefix, "a", "b", **options), state_dir


def assert_every_run_refused(prefix: str, tmp_path: Any, spec: Dict[str, Any], state_dir: str, named: str,
                             words: str, runs: Sequence[str] = RUNS, compare: bool = True) -> None:
    before = normalised(prefix) if compare else None  # this test's objects only: other runs come and go
    for how in runs:
        failed, message = attempt(how, spec, state_dir, tmp_path)
        assert failed, "%s was not refused" % how
        assert named in message and words in message, (how, message)
        assert "\n" not in message.strip(), (how, message)
    if compare:
        assert normalised(prefix) == before


STATE_DIRECTORIES = [
    ("writable by group", lambda d: os.chmod(d, 0o770), "writable by group"),
    ("writable by others", lambda d: os.chmod(d, 0o777), "writable by others"),
    ("sticky, writable by all", lambda d: os.chmod(d, 0o1777), "writable by others"),
    ("another uid's", lambda d: os.chown(d, 65534, -1), "owned by uid 65534"),
]


@pytest.mark.parametrize("make,words", [c[1:] for c in STATE_DIRECTORIES], ids=[c[0] for c in STATE_DIRECTORIES])
def test_an_untrusted_state_directory_stops_every_run(prefix: str, tmp_path: Any, make: Any, words: str) -> None:
    """Anyone who could write there could plant rules for root to restore, or a record that makes
    purge or teardown delete a namespace the topology never created."""
    spec, state_dir = applied(prefix, tmp_path)
    make(state_dir)
    assert_every_run_refused(prefix, tmp_path, spec, state_dir, state_dir, words)


def as_symlink(path: str) -> None:
    os.rename(path, path + ".elsewhere")
    os.symlink(path + ".elsewhere", path)


STATE_FILES = [
    ("another uid's", lambda f: os.chown(f, 65534, -1), "owned by uid 65534"),
    ("mode 0666", lambda f: os.chmod(f, 0o666), "writable by others"),
    ("a symlink", as_symlink, "is a symlink"),
]


@pytest.mark.parametrize("make,words", [c[1:] for c in STATE_FILES], ids=[c[0] for c in STATE_FILES])
def test_an_untrusted_tables_file_stops_every_run(prefix: str, tmp_path: Any, make: Any, words: str) -> None:
    spec, state_dir = applied(prefix, tmp_path)
    tables = os.path.join(state_dir, prefix + "sec.tables.json")
    make(tables)
    # A teardown in check mode neither reads nor removes the tables: only the record matters there.
    assert_every_run_refused(prefix, tmp_path, spec, state_dir, tables, words)


@pytest.mark.parametrize("make,words", [c[1:] for c in STATE_FILES], ids=[c[0] for c in STATE_FILES])
def test_an_untrusted_ownership_record_stops_every_run(prefix: str, tmp_path: Any, make: Any, words: str) -> None:
    spec, state_dir = applied(prefix, tmp_path)
    record = os.path.join(state_dir, prefix + "sec.owned.json")
    make(record)
    assert_every_run_refused(prefix, tmp_path, spec, state_dir, record, words)


def test_a_tables_file_planted_by_another_user_is_never_used(prefix: str, tmp_path: Any) -> None:
    """The file keeps the form iptables gave each declared rule, and that form is what a run
    restores: a planted one would have root restore the planter's rule, and check call it no drift."""
    spec, state_dir = applied(prefix, tmp_path)
    tables = os.path.join(state_dir, prefix + "sec.tables.json")
    with open(tables) as handle:
        data = json.load(handle)
    forms = data["canonical"]["ipv4"]["rules"]
    assert [form[2] for form in forms] == [RULE], forms
    forms[0][3] = "-p tcp -m tcp --dport 2323 -j ACCEPT"
    os.unlink(tables)
    with open(tables, "w") as handle:  # as another user would: their file, in root's directory
        json.dump(data, handle)
    os.chown(tables, 65534, -1)
    run(["iptables", "-F", "INPUT"], ns=prefix + "a")  # a drift that the run has to restore
    for how in ("program check", "program apply", "module apply"):
        failed, message = attempt(how, topology(prefix, "a"), state_dir, tmp_path)
        assert failed and tables in message and "owned by uid 65534" in message, (how, message)
    assert "2323" not in run(["iptables-save"], ns=prefix + "a")


# -- /etc/netns/NAME/resolv.conf: never a FIFO opened, never a symlink or foreign directory used --
def etc_dir(prefix: str, name: str = "a") -> str:
    return os.path.join("/etc/netns", prefix + name)


def test_a_fifo_resolv_conf_fails_check_and_apply_quickly(prefix: str, tmp_path: Any) -> None:
    spec, state_dir = applied(prefix, tmp_path, nameservers=["192.0.2.53"])
    resolv = os.path.join(etc_dir(prefix), "resolv.conf")
    os.unlink(resolv)
    before = normalised(prefix)  # read without the FIFO: the tests' own reading would block on it
    os.mkfifo(resolv, 0o644)
    started = time.monotonic()
    try:
        assert_every_run_refused(prefix, tmp_path, spec, state_dir, resolv, "is a FIFO", compare=False)
        assert time.monotonic() - started < 60
        assert stat.S_ISFIFO(os.lstat(resolv).st_mode)
    finally:
        os.unlink(resolv)
    assert normalised(prefix) == before


@pytest.mark.parametrize("how", ["module apply", "program apply"])
def test_a_symlinked_etc_netns_directory_is_refused(prefix: str, tmp_path: Any, how: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    os.makedirs("/etc/netns", mode=0o755, exist_ok=True)
    os.symlink(str(victim), etc_dir(prefix))
    try:
        spec = topology(prefix, "a", nameservers=["192.0.2.53"])
        assert_every_run_refused(prefix, tmp_path, spec, str(tmp_path / "state"), etc_dir(prefix), "is a symlink",
                                 runs=[how, how.replace("apply", "check")])
        assert os.listdir(str(victim)) == []
    finally:
        os.unlink(etc_dir(prefix))


def test_a_foreign_etc_netns_directory_is_refused(prefix: str, tmp_path: Any) -> None:
    os.makedirs(etc_dir(prefix), mode=0o755)
    try:
        os.chown(etc_dir(prefix), 65534, -1)
        spec = topology(prefix, "a", nameservers=["192.0.2.53"])
        assert_every_run_refused(prefix, tmp_path, spec, str(tmp_path / "state"), etc_dir(prefix),
                                 "owned by uid 65534", runs=["module apply", "module check", "program apply"])
        assert os.listdir(etc_dir(prefix)) == []
    finally:
        shutil.rmtree(etc_dir(prefix))


def test_stale_temporaries_are_removed_by_the_next_run(prefix: str, tmp_path: Any) -> None:
    _spec, state_dir = applied(prefix, tmp_path, nameservers=["192.0.2.53"])
    stale = [os.path.join(etc_dir(prefix), "resolv.conf.tmp.999999"),
             os.path.join(state_dir, prefix + "sec.owned.json.tmp.999999"),
             os.path.join(state_dir, prefix + "sec.tables.json.tmp.1")]
    for path in stale:
        with open(path, "w") as handle:
            handle.write("left by a killed run")
    # what the next run writes anew: resolv.conf, the record and the tables
    failed, message = attempt("program apply", topology(prefix, "a", nameservers=["192.0.2.54"],
                                                        rule="-p tcp --dport 23 -j ACCEPT"), state_dir, tmp_path)
    assert not failed, message
    assert [path for path in stale if os.path.lexists(path)] == []
    assert sorted(os.listdir(etc_dir(prefix))) == ["resolv.conf"]


def made_under_umask(prefix: str, state_dir: str, umask: int) -> None:
    old = os.umask(umask)
    try:
        failed, message = attempt("module apply", topology(prefix, "a", nameservers=["192.0.2.53"]), state_dir,
                                  os.path.dirname(state_dir))
    finally:
        os.umask(old)
    assert not failed, message


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_directories_made_under_any_umask(prefix: str, tmp_path: Any, umask: int) -> None:
    state_dir = str(tmp_path / "state")
    made_under_umask(prefix, state_dir, umask)
    assert mode_of(state_dir) == 0o700
    assert mode_of(etc_dir(prefix)) == 0o755
    assert mode_of(os.path.join(etc_dir(prefix), "resolv.conf")) == 0o644
    for name in ("owned", "tables"):
        assert mode_of(os.path.join(state_dir, "%ssec.%s.json" % (prefix, name))) == 0o600


@pytest.mark.parametrize("umask", [0o000])
def test_missing_parents_of_the_state_directory_are_0700_too(prefix: str, tmp_path: Any, umask: int) -> None:
    """ownership.save makes the state directory with os.makedirs, whose parents get 0777 & ~umask."""
    state_dir = str(tmp_path / "new" / "state")
    made_under_umask(prefix, state_dir, umask)
    assert mode_of(state_dir) == 0o700 and mode_of(os.path.dirname(state_dir)) == 0o700


# -- the saved topology the restore program reads -------------------------------------------------
def write(path: Any, content: Any) -> None:
    with open(str(path), "wb" if isinstance(content, bytes) else "w") as handle:
        handle.write(content)


SAVED = [
    ("nested 100000 deep", lambda p: write(p, "[" * 100000 + "]" * 100000), "topology.json", "nested too deeply"),
    ("objects nested deep", lambda p: write(p, '{"name": ' * 50000 + "1" + "}" * 50000), "topology.json",
     "nested too deeply"),
    ("a number", lambda p: write(p, "1"), "topology.json", "must be a mapping"),
    ("null", lambda p: write(p, "null"), "topology.json", "must be a mapping"),
    ("a string", lambda p: write(p, '"lab"'), "topology.json", "must be a mapping"),
    ("not UTF-8", lambda p: write(p, b'{"name": "\xff"}'), "topology.json", "not valid JSON"),
    ("missing", lambda p: None, "topology.json", "does not exist"),
    ("a directory", lambda p: os.mkdir(str(p)), "topology.json", "is a directory"),
    ("mode 0666", lambda p: (write(p, "{}"), os.chmod(str(p), 0o666)), "topology.json", "writable by others"),
    ("another uid's", lambda p: (write(p, "{}"), os.chown(str(p), 65534, -1)), "topology.json", "owned by uid 65534"),
    ("a symlink", lambda p: (write(str(p) + ".real", "{}"), os.symlink(str(p) + ".real", str(p))), "topology.json",
     "is a symlink"),
    ("a FIFO", lambda p: os.mkfifo(str(p), 0o600), "topology.json", "is a FIFO"),
    ("in a directory writable by others", lambda p: (write(p, "{}"), os.chmod(os.path.dirname(str(p)), 0o777)),
     "", "writable by others"),
]


@pytest.mark.parametrize("make,named,words", [c[1:] for c in SAVED], ids=[c[0] for c in SAVED])
def test_a_bad_saved_topology_is_one_line_and_exit_2(prefix: str, tmp_path: Any, make: Any, named: str,
                                                     words: str) -> None:
    directory = tmp_path / "etc"
    directory.mkdir(mode=0o700)
    path = directory / "topology.json"
    make(path)
    before = normalised(prefix)
    for command in ("apply", "check", "teardown", "show", "graph"):
        with deadline(60):
            proc = restore_program(command, str(path), "--state-dir", str(tmp_path / "state"))
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert proc.stdout == "" and proc.stderr.count("\n") == 1, (command, proc.stderr[:2000])
        assert proc.stderr.startswith("linuxnet-netns: %s" % os.path.join(str(directory), named).rstrip("/")), \
            proc.stderr
        assert words in proc.stderr, (command, proc.stderr)
    assert normalised(prefix) == before
    assert not (tmp_path / "state").exists()
