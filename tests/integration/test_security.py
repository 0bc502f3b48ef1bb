"""Files the engine writes: root-owned, the right modes, written atomically (no temporary files left),
never outside /run/netns, /etc/netns and the state directory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from typing import Any

from helpers import COLLECTIONS, MODULE_PYTHON, run_module


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
            "from ansible_collections.linuxnet.netns.plugins.module_utils import nsfs\n"
            "d = sys.argv[1]\n"
            "os.symlink(sys.argv[2], os.path.join(d, 'f.tmp.%d' % os.getpid()))\n"
            "os.symlink(sys.argv[2], os.path.join(d, 'g'))\n"
            "nsfs.write_file_atomically(os.path.join(d, 'f'), 'x\\n')\n"
            "nsfs.write_file_atomically(os.path.join(d, 'g'), 'y\\n')\n")
    subprocess.run([MODULE_PYTHON, "-c", code, str(directory), str(target)], capture_output=True, text=True,
                   env=dict(os.environ, PYTHONPATH=COLLECTIONS), check=True)
    assert target.read_text() == "keep\n"
    assert sorted(os.listdir(str(directory))) == ["f", "g"]
    assert (directory / "f").read_text() == "x\n" and (directory / "g").read_text() == "y\n"
    assert not os.path.islink(str(directory / "g"))
