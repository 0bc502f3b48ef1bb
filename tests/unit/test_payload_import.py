"""payload_import: modules imported from a zip as Ansible ships them are compiled at most once, not
at all when the host's bytecode cache holds them, and behave as zipimport would load them (same
code, __file__, packages, tracebacks)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from typing import Any, Dict, List, Optional

import pytest

import ansible_collections.linuxnet.netns.plugins.module_utils.payload_import as payload_import

PACKAGE = "ansible_collections/linuxnet/netns/plugins/module_utils/"
PROBES = ["probe_a.py", "probe_pkg/__init__.py", "probe_pkg/probe_b.py"]
PROBE_B = "ansible_collections.linuxnet.netns.plugins.module_utils.probe_pkg.probe_b"
# Counts compilations per file (audit event "compile"), imports the probes, reports what it saw.
PROBE = """
import json, sys, traceback
compiled = {}
def count(event, args):
    if event == "compile" and isinstance(args[1], str) and "/module_utils/probe" in args[1]:
        name = args[1].split("/module_utils/")[1]
        compiled[name] = compiled.get(name, 0) + 1
sys.addaudithook(count)
if sys.argv[1] == "with":
    from ansible_collections.linuxnet.netns.plugins.module_utils import payload_import
    payload_import.install()
from ansible_collections.linuxnet.netns.plugins.module_utils import probe_a
from ansible_collections.linuxnet.netns.plugins.module_utils.probe_pkg import probe_b
try:
    probe_b.fail()
except ZeroDivisionError as error:
    failed_in = traceback.extract_tb(error.__traceback__)[-1]
print(json.dumps({"compiled": compiled, "value": probe_a.value(), "file": probe_b.__file__,
                  "package": probe_b.__package__, "failed_in": [failed_in.filename, failed_in.line]}))
"""


def build_payload(path: str, value: int = 42) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for package in ("ansible_collections/", "ansible_collections/linuxnet/", "ansible_collections/linuxnet/netns/",
                        "ansible_collections/linuxnet/netns/plugins/", PACKAGE, PACKAGE + "probe_pkg/"):
            archive.writestr(package + "__init__.py", "")
        with open(payload_import.__file__) as handle:
            archive.writestr(PACKAGE + "payload_import.py", handle.read())
        archive.writestr(PACKAGE + "probe_a.py", "from .probe_pkg import probe_b\n\ndef value():\n    return probe_b.VALUE\n")
        archive.writestr(PACKAGE + "probe_pkg/probe_b.py", "VALUE = %d\n\ndef fail():\n    return 1 / 0\n" % value)
    return path


def run_probe(payload: str, mode: str = "with", cache: Optional[str] = None, flags: Optional[List[str]] = None) -> Dict[str, Any]:
    """Import the probes from ``payload`` in a new interpreter; ``cache``: LINUXNET_NETNS_BYTECODE_CACHE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != payload_import.CACHE_VARIABLE}
    if cache is not None:
        env[payload_import.CACHE_VARIABLE] = cache
    argv = [sys.executable, "-E", "-s"] + (flags or []) + ["-c", "import sys; sys.path.insert(0, %r)\n" % payload + PROBE, mode]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout)


@pytest.fixture
def payload(tmp_path: Any) -> str:
    return build_payload(str(tmp_path / "payload.zip"))


def cached_files(directory: Any) -> List[str]:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_each_file_compiled_once_instead_of_twice(payload: str) -> None:
    without = run_probe(payload, "without", cache="off")
    assert without["compiled"] == dict.fromkeys(PROBES, 2)  # what CPython's zipimport does
    found = run_probe(payload, cache="off")
    assert found["compiled"] == dict.fromkeys(PROBES, 1)
    assert found["value"] == without["value"] == 42
    assert found["file"] == without["file"] and found["file"].endswith("payload.zip/" + PACKAGE + "probe_pkg/probe_b.py")
    assert found["package"] == without["package"]
    assert found["failed_in"] == without["failed_in"]


def test_a_second_run_compiles_nothing_and_behaves_the_same(payload: str, tmp_path: Any) -> None:
    cache = tmp_path / "cache"
    first = run_probe(payload, cache=str(cache))
    assert first["compiled"] == dict.fromkeys(PROBES, 1)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    files = cached_files(cache)
    assert len(files) == 3 and all(name.endswith(".%s.pyc" % sys.implementation.cache_tag) for name in files)
    assert all(stat.S_IMODE(os.stat(cache / name).st_mode) == 0o600 for name in files)
    second = run_probe(payload, cache=str(cache))
    assert second["compiled"] == {}
    assert {k: v for k, v in second.items() if k != "compiled"} == {k: v for k, v in first.items() if k != "compiled"}


def test_cached_code_names_the_payload_it_runs_from(tmp_path: Any) -> None:
    """Each run has its own payload path; a traceback must name this run's, and show the line."""
    cache = str(tmp_path / "cache")
    run_probe(build_payload(str(tmp_path / "one.zip")), cache=cache)
    later = run_probe(build_payload(str(tmp_path / "two.zip")), cache=cache)
    assert later["compiled"] == {}
    assert later["failed_in"] == [str(tmp_path / "two.zip") + "/" + PACKAGE + "probe_pkg/probe_b.py", "return 1 / 0"]
    assert later["file"].startswith(str(tmp_path / "two.zip"))


def test_a_changed_file_is_compiled_again(tmp_path: Any) -> None:
    cache = str(tmp_path / "cache")
    run_probe(build_payload(str(tmp_path / "old.zip")), cache=cache)
    newer = run_probe(build_payload(str(tmp_path / "new.zip"), value=43), cache=cache)
    assert newer["compiled"] == {"probe_pkg/probe_b.py": 1}
    assert newer["value"] == 43
    assert run_probe(str(tmp_path / "new.zip"), cache=cache)["compiled"] == {}


@pytest.mark.parametrize("damage", ["truncated", "garbage", "symlink"])
def test_a_damaged_cache_file_is_compiled_again_and_replaced(payload: str, tmp_path: Any, damage: str) -> None:
    cache = tmp_path / "cache"
    run_probe(payload, cache=str(cache))
    victim = cache / [name for name in cached_files(cache) if "probe_b" in name][0]
    good = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(good[:20])
    elif damage == "garbage":
        victim.write_bytes(good[:16] + b"not marshal data")
    else:
        (tmp_path / "elsewhere.pyc").write_bytes(good)
        victim.unlink()
        victim.symlink_to(tmp_path / "elsewhere.pyc")
    again = run_probe(payload, cache=str(cache))
    assert again["compiled"] == {"probe_pkg/probe_b.py": 1} and again["value"] == 42
    assert not victim.is_symlink() and victim.read_bytes() == good


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o755])
def test_a_cache_directory_others_can_write_or_read_is_not_used(payload: str, tmp_path: Any, mode: int) -> None:
    cache = tmp_path / "cache"
    run_probe(payload, cache=str(cache))
    before = {name: (cache / name).read_bytes() for name in cached_files(cache)}
    os.chmod(cache, mode)
    for _ in range(2):
        assert run_probe(payload, cache=str(cache))["compiled"] == dict.fromkeys(PROBES, 1)
    assert {name: (cache / name).read_bytes() for name in cached_files(cache)} == before


def test_a_symlinked_cache_directory_is_not_used(payload: str, tmp_path: Any) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert run_probe(payload, cache=str(tmp_path / "link"))["compiled"] == dict.fromkeys(PROBES, 1)
    assert cached_files(tmp_path / "real") == []


@pytest.mark.parametrize("setting, flags, where", [
    ("off", [], None),
    (None, ["-B", "-X", "pycache_prefix=PREFIX"], None),  # Python told to write no bytecode
    (None, ["-X", "pycache_prefix=PREFIX"], "PREFIX/linuxnet-netns"),  # Python's cache prefix
    ("DIR", ["-B"], "DIR"),  # named for this cache: used even then
])
def test_where_the_cache_is(payload: str, tmp_path: Any, setting: Optional[str], flags: List[str], where: Optional[str]) -> None:
    def place(text: str) -> str:
        return text.replace("PREFIX", str(tmp_path / "prefix")).replace("DIR", str(tmp_path / "dir"))

    run_probe(payload, cache=None if setting is None else place(setting), flags=[place(flag) for flag in flags])
    written = sorted(os.path.join(top, name) for top, _, names in os.walk(tmp_path) for name in names
                     if name.endswith(".pyc") and ".probe" in name)  # Python's own files go to its prefix too
    if where is None:
        assert written == []
    else:
        assert len(written) == 3 and {os.path.dirname(path) for path in written} == {place(where)}


@pytest.mark.parametrize("setting, expected", [(None, "default"), ("off", "None"), ("/srv/x", "/srv/x")])
def test_default_places(setting: Optional[str], expected: str) -> None:
    """Without a setting: /var/cache for root, the user's cache directory for anyone else."""
    env = {k: v for k, v in os.environ.items() if k != payload_import.CACHE_VARIABLE}
    env["XDG_CACHE_HOME"] = "/home/someone/.cache"
    if setting is not None:
        env[payload_import.CACHE_VARIABLE] = setting
    code = "import sys; sys.path.insert(0, %r)\n" % os.path.dirname(payload_import.__file__) + \
        "import payload_import; print(payload_import.cache_directory())"
    found = subprocess.run([sys.executable, "-E", "-s", "-c", code], capture_output=True, text=True, check=True,
                           env=env).stdout.strip()
    if expected == "default":
        expected = ("/var/cache/linuxnet-netns/bytecode" if os.geteuid() == 0
                    else "/home/someone/.cache/linuxnet-netns/bytecode")
    assert found == expected


def test_outside_a_zip_nothing_is_installed() -> None:
    payload_import.install()
    assert payload_import.OneCompileFinder not in sys.meta_path
