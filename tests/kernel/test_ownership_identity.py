"""Ownership that cannot be fooled (issue 15, items 1-3, 15, 16): concurrent applies serialise
completely, a rolled-back apply leaves the record as it was, and what the topology owns is known
by identity, so a name someone else re-created is never removed."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List

from helpers import COLLECTIONS, MODULE_PYTHON, leftovers, netns_list, restore_program as restore, run, run_module, \
    save_spec

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel.session import Kernel

# iptables-restore that refuses in the namespace named by REFUSE_IN and is the real one elsewhere
# (the rules' canonicalisation runs in an anonymous namespace, which passes).
REFUSING_RESTORE = """#!/usr/bin/env python3
import os, sys
target = "/run/netns/" + os.environ.get("REFUSE_IN", "-")
if os.path.exists(target) and os.stat("/proc/self/ns/net").st_ino == os.stat(target).st_ino:
    sys.exit("refused here on purpose")
os.execv("/usr/sbin/iptables-restore", ["iptables-restore"] + sys.argv[1:])
"""


def topology(prefix: str, names: List[str], rule_in: List[str] = ()) -> Dict[str, Any]:
    """Namespaces ``names``, each with a veth to the root; a firewall rule in those of ``rule_in``."""
    namespaces, links = [], []
    for i, short in enumerate(names):
        ns: Dict[str, Any] = {"name": prefix + short, "addresses": [{"dev": "in", "address": "10.238.%d.2/30" % i}]}
        if short in rule_in:
            ns["iptables"] = [{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]}]
        namespaces.append(ns)
        links.append({"type": "veth", "name": prefix + "o" + short, "peer": "in", "peer_netns": prefix + short})
    return {"name": prefix + "own", "namespaces": namespaces, "links": links}


def record_of(state_dir: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    with open(os.path.join(state_dir, spec["name"] + ".owned.json")) as handle:
        return json.load(handle)


def refusing_path(tmp_path: Any) -> str:
    shim = tmp_path / "shim"
    shim.mkdir()
    script = shim / "iptables-restore"
    script.write_text(REFUSING_RESTORE)
    script.chmod(0o755)
    return "%s:%s" % (shim, os.environ["PATH"])


def module_with_env(args: Dict[str, Any], env: Dict[str, str]) -> Dict[str, Any]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        return run_module("topology", args)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_concurrent_applies_of_one_topology_serialise_completely(prefix: str, tmp_path: Any) -> None:
    """The restore program and the module apply the same topology at the same moment, round after
    round: the record always claims exactly the topology's objects by their identity now, and
    teardown removes everything (before the fix both runs read the record before the lock and the
    later one called everything foreign, so teardown removed nothing)."""
    spec = topology(prefix, ["a", "b"])
    path, state_dir = save_spec(tmp_path, spec)
    module_args = json.dumps({"ANSIBLE_MODULE_ARGS": {"topology": spec, "state_dir": state_dir}})
    args_file = tmp_path / "args.json"
    args_file.write_text(module_args)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    for round_number in range(8):
        program = subprocess.Popen([MODULE_PYTHON, "-c", "from ansible_collections.linuxnet.netns.plugins.module_utils."
                                    "_engine.cli import main; import sys; sys.exit(main())", "apply", path, "--state-dir", state_dir],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        module = subprocess.Popen([MODULE_PYTHON, "-m", "ansible_collections.linuxnet.netns.plugins.modules.topology",
                                   str(args_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        program_out = program.communicate(timeout=120)
        module_out = module.communicate(timeout=120)
        assert program.returncode == 0, program_out
        assert json.loads(module_out[0]).get("failed") is None, module_out
        record = record_of(state_dir, spec)
        with Kernel() as kernel:
            assert record["namespaces"] == {prefix + n: kernel.identity(prefix + n) for n in ("a", "b")}, round_number
            claimed = {(item["netns"], item["name"]): item["identity"] for item in record["links"]}
            expected = {}
            for link in spec["links"]:
                for ns, name in ((None, link["name"]), (link["peer_netns"], link["peer"])):
                    expected[(ns, name)] = [kernel.identity(ns), _ifindex(ns, name)]
            assert claimed == expected, round_number
        torn = restore("teardown", path, "--state-dir", state_dir)
        assert torn.returncode == 0, torn.stderr
        assert leftovers(prefix) == [], round_number
        assert not os.path.exists(os.path.join(state_dir, spec["name"] + ".owned.json"))


def _ifindex(ns: Any, name: str) -> int:
    argv = ["ip", "-j", "link", "show", "dev", name] if ns is None else ["ip", "-n", ns, "-j", "link", "show", "dev", name]
    return json.loads(run(argv))[0]["ifindex"]


def test_a_rolled_back_apply_leaves_the_record_as_it_was(prefix: str, tmp_path: Any) -> None:
    """A refusal part-way, rolled back (the module's default), leaves the record byte for byte as
    before the run (none where there was none): a namespace of that name that someone else makes
    later is not the topology's, and teardown leaves it."""
    state_dir = str(tmp_path / "state")
    first = topology(prefix, ["a"])
    second = topology(prefix, ["a", "b"], rule_in=["b"])
    env = {"PATH": refusing_path(tmp_path), "REFUSE_IN": prefix + "b"}
    # no record yet: a failed first run leaves none
    failed = module_with_env({"topology": second, "state_dir": state_dir}, env)
    assert failed["failed"] and "refused here on purpose" in failed["msg"], failed
    assert failed["changed"] is False, failed  # all rolled back
    assert not os.path.exists(os.path.join(state_dir, second["name"] + ".owned.json"))
    assert leftovers(prefix) == []
    assert not run_module("topology", {"topology": first, "state_dir": state_dir}).get("failed")
    record_path = os.path.join(state_dir, first["name"] + ".owned.json")
    with open(record_path) as handle:
        before = handle.read()
    failed = module_with_env({"topology": second, "state_dir": state_dir}, env)
    assert failed["failed"] and "rolled back" in failed["msg"], failed
    with open(record_path) as handle:
        assert handle.read() == before
    assert prefix + "b" not in netns_list()
    run(["ip", "netns", "add", prefix + "b"])  # someone else's, with the name the failed run had claimed
    for state in ({"state": "absent"}, {"state": "absent"}):
        result = run_module("topology", dict(state, topology=second, state_dir=state_dir))
        assert not result.get("failed"), result
        assert prefix + "b" in netns_list() and prefix + "a" not in netns_list()


def test_a_name_made_again_by_someone_else_is_not_ours(prefix: str, tmp_path: Any) -> None:
    """Created by the topology, then deleted and made again by hand (the kernel may even hand out
    the same inode number again): an apply adopts it as foreign, purge and teardown leave it."""
    state_dir = str(tmp_path / "state")
    spec = topology(prefix, ["a", "b"])
    assert not run_module("topology", {"topology": spec, "state_dir": state_dir}).get("failed")
    a, root_end = prefix + "a", prefix + "oa"
    run(["ip", "netns", "delete", a])
    _wait_gone(root_end)
    run(["ip", "netns", "add", a])
    run(["ip", "link", "add", root_end, "type", "veth", "peer", "name", prefix + "x"])
    # the topology without them, purged: neither is removed, the rest of the old version is
    smaller = topology(prefix, ["c"])
    result = run_module("topology", {"topology": smaller, "state_dir": state_dir, "purge": True})
    assert not result.get("failed"), result
    assert a in netns_list() and prefix + "b" not in netns_list()
    assert json.loads(run(["ip", "-j", "link", "show", "dev", root_end]))[0]["ifname"] == root_end
    # the whole first version again (it adopts both as they are: no veth is made over a foreign end)
    run(["ip", "link", "delete", root_end])
    again = run_module("topology", {"topology": spec, "state_dir": state_dir})
    assert not again.get("failed"), again
    record = record_of(state_dir, spec)
    assert a not in record["namespaces"] and prefix + "b" in record["namespaces"]
    torn = run_module("topology", {"topology": spec, "state": "absent", "state_dir": state_dir})
    assert not torn.get("failed"), torn
    assert a in netns_list() and prefix + "b" not in netns_list() and prefix + "c" not in netns_list()
    assert os.listdir(state_dir) == []  # absent leaves no file of the topology
    run(["ip", "netns", "delete", a])


def _wait_gone(link: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while subprocess.run(["ip", "link", "show", "dev", link], capture_output=True, check=False).returncode == 0:
        assert time.monotonic() < deadline, link
        time.sleep(0.02)


def test_a_failed_run_reports_what_stays_changed(prefix: str, tmp_path: Any) -> None:
    """Purge deleted a namespace, then the kernel refused a rule and the rest was rolled back: the
    deletion stands, so the run reports changed and lists it."""
    state_dir = str(tmp_path / "state")
    first = topology(prefix, ["a", "b"])
    assert not run_module("topology", {"topology": first, "state_dir": state_dir}).get("failed")
    second = topology(prefix, ["a"], rule_in=["a"])
    failed = module_with_env({"topology": second, "state_dir": state_dir, "purge": True},
                             {"PATH": refusing_path(tmp_path), "REFUSE_IN": prefix + "a"})
    assert failed["failed"] and failed["changed"] is True, failed
    assert "delete netns %sb (cannot be undone)" % prefix in failed["msg"], failed["msg"]
    assert [c["object"] for c in failed["changes"]] == [prefix + "b"]
    assert prefix + "b" not in netns_list()
    record = record_of(state_dir, first)
    assert prefix + "b" not in record["namespaces"] and prefix + "a" in record["namespaces"]
    assert not run_module("topology", {"topology": second, "state": "absent", "state_dir": state_dir}).get("failed")
    assert leftovers(prefix) == []
