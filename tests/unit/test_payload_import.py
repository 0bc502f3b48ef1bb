"""payload_import: modules imported from a zip as Ansible ships them are compiled once, and behave
as zipimport would load them (same code, __file__, packages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from typing import Any, Dict

import ansible_collections.linuxnet.netns.plugins.module_utils.payload_import as payload_import

PACKAGE = "ansible_collections/linuxnet/netns/plugins/module_utils/"
# Counts compilations per file (audit event "compile"), imports the probes, reports what it saw.
PROBE = """
import json, sys
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
print(json.dumps({"compiled": compiled, "value": probe_a.value(), "file": probe_b.__file__,
                  "package": probe_b.__package__}))
"""


def run_probe(tmp_path: Any, mode: str) -> Dict[str, Any]:
    payload = str(tmp_path / "payload.zip")
    with zipfile.ZipFile(payload, "w") as archive:
        for package in ("ansible_collections/", "ansible_collections/linuxnet/", "ansible_collections/linuxnet/netns/",
                        "ansible_collections/linuxnet/netns/plugins/", PACKAGE, PACKAGE + "probe_pkg/"):
            archive.writestr(package + "__init__.py", "")
        with open(payload_import.__file__) as handle:
            archive.writestr(PACKAGE + "payload_import.py", handle.read())
        archive.writestr(PACKAGE + "probe_a.py", "from .probe_pkg import probe_b\n\ndef value():\n    return probe_b.VALUE\n")
        archive.writestr(PACKAGE + "probe_pkg/probe_b.py", "VALUE = 42\n")
    env = dict(os.environ, PYTHONPATH=payload)
    out = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, %r)\n" % payload + PROBE, mode],
                         capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out)


def test_each_file_compiled_once_instead_of_twice(tmp_path: Any) -> None:
    without = run_probe(tmp_path, "without")
    files = ["probe_a.py", "probe_pkg/__init__.py", "probe_pkg/probe_b.py"]
    assert without["compiled"] == dict.fromkeys(files, 2)  # what CPython's zipimport does
    found = run_probe(tmp_path, "with")
    assert found["compiled"] == dict.fromkeys(files, 1)
    assert found["value"] == without["value"] == 42
    assert found["file"] == without["file"] and found["file"].endswith("payload.zip/" + PACKAGE + "probe_pkg/probe_b.py")
    assert found["package"] == without["package"]


def test_outside_a_zip_nothing_is_installed() -> None:
    payload_import.install()
    assert payload_import.OneCompileFinder not in sys.meta_path
