"""Faults and concurrency on the real kernel: an apply killed with SIGKILL at many points of its plan
is finished by the next run with no leftovers; two applies at once are serialised by the host lock,
which a killed holder releases."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any, Dict

from helpers import COLLECTIONS, MODULE_PYTHON, leftovers, netns_list, restore_program as restore, run, run_module, save_spec

# Runs the engine's apply like the restore program does, but SIGKILLs itself right after the
# KILL_AFTER-th change reached the kernel (the journal hears of every one, also of those applied
# several at once), or, with KILL_AFTER=0, prints the plan's length.
KILLER = r"""
import json, os, signal, sys
from ansible_collections.linuxnet.netns.plugins.module_utils._engine import rollback
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel.session import Kernel
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.topology import converge_topology

limit = int(os.environ["KILL_AFTER"])
real_applied = rollback.Journal.applied
done = [0]

def applied_then_maybe_die(journal, change, undo):
    real_applied(journal, change, undo)
    done[0] += 1
    if done[0] == limit:
        os.kill(os.getpid(), signal.SIGKILL)

rollback.Journal.applied = applied_then_maybe_die
with open(sys.argv[1]) as handle:
    data = json.load(handle)
with Kernel() as kernel:
    changes = converge_topology(kernel, data, check_mode=limit == 0, state_dir=sys.argv[2])
print(len(changes))
"""


def topology(prefix: str, count: int) -> Dict[str, Any]:
    """``count`` namespaces, each with a veth to the root, addresses, a route, a sysctl and a rule."""
    namespaces, links, host = [], [], []
    for i in range(count):
        ns = "%sn%d" % (prefix, i)
        namespaces.append({
            "name": ns, "sysctls": {"net.ipv4.ip_forward": 1},
            "addresses": [{"dev": "in", "address": "10.234.%d.2/30" % i}],
            "routes": [{"dst": "default", "via": "10.234.%d.1" % i}],
            "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]}]})
        links.append({"type": "veth", "name": "%so%d" % (prefix, i), "peer": "in", "peer_netns": ns})
        host.append({"dev": "%so%d" % (prefix, i), "address": "10.234.%d.1/30" % i})
    return {"name": prefix + "faults", "namespaces": namespaces, "links": links, "host": {"addresses": host}}


def python(code: str, *args: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([MODULE_PYTHON, "-c", code] + list(args), capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=COLLECTIONS, **env), check=False)


def test_sigkill_at_many_points_then_the_next_run_converges(prefix: str, tmp_path: Any) -> None:
    spec = topology(prefix, 20)
    path, state = save_spec(tmp_path, spec)
    planned = python(KILLER, path, state, env={"KILL_AFTER": "0"})
    assert planned.returncode == 0, planned.stderr
    total = int(planned.stdout)
    assert total > 100
    # 50 kill points spread over the whole plan: namespaces, links, addresses, routes and rules
    points = sorted({1 + (total - 2) * k // 49 for k in range(50)})
    assert len(points) == 50
    for point in points:
        killed = python(KILLER, path, state, env={"KILL_AFTER": str(point)})
        assert killed.returncode == -9, (point, killed.stdout, killed.stderr)
        resumed = restore("apply", path, "--state-dir", state)
        assert resumed.returncode == 0, (point, resumed.stderr)
        check = restore("check", path, "--state-dir", state)
        assert check.returncode == 0, (point, check.stdout)
        torn = restore("teardown", path, "--state-dir", state)
        assert torn.returncode == 0, (point, torn.stderr)
        assert leftovers(prefix) == [], point


# Holds the host lock until killed.
HOLDER = r"""
import sys, time
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.system.host_lock import host_lock
with host_lock():
    print("held", flush=True)
    time.sleep(600)
"""


def test_lock_serialises_applies_and_is_released_when_its_holder_dies(prefix: str, tmp_path: Any) -> None:
    spec = topology(prefix, 2)
    path, state = save_spec(tmp_path, spec)
    holder = subprocess.Popen([MODULE_PYTHON, "-c", HOLDER], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=COLLECTIONS))
    try:
        assert holder.stdout.readline().strip() == "held"
        waiting = subprocess.Popen([MODULE_PYTHON, "-c", "from ansible_collections.linuxnet.netns.plugins."
                                    "module_utils._engine.cli import main; import sys; sys.exit(main())", "apply", path, "--state-dir", state],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ, PYTHONPATH=COLLECTIONS))
        time.sleep(2)
        assert waiting.poll() is None  # blocked on the lock
        assert leftovers(prefix) == []  # and nothing changed meanwhile
        holder.kill()  # dies holding the lock: the kernel releases it
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert restore("check", path, "--state-dir", state).returncode == 0
    finally:
        holder.kill()
        holder.wait()
    restore("teardown", path, "--state-dir", state)


def test_two_applies_at_once_both_land(prefix: str, tmp_path: Any) -> None:
    """The topology module and the restore program, started together on different topologies."""
    left, right = topology(prefix + "l", 5), topology(prefix + "r", 5)
    right["namespaces"] = [dict(ns, addresses=[{"dev": "in", "address": a["address"].replace("10.234.", "10.235.")}
                                               for a in ns["addresses"]],
                                routes=[{"dst": "default", "via": ns["routes"][0]["via"].replace("10.234.", "10.235.")}])
                           for ns in right["namespaces"]]
    right["host"]["addresses"] = [dict(a, address=a["address"].replace("10.234.", "10.235.")) for a in right["host"]["addresses"]]
    path, state = save_spec(tmp_path, right, "right.json")
    program = subprocess.Popen([MODULE_PYTHON, "-c", "from ansible_collections.linuxnet.netns.plugins."
                                "module_utils._engine.cli import main; import sys; sys.exit(main())", "apply", path, "--state-dir", state],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=COLLECTIONS))
    module = run_module("topology", {"topology": left, "state_dir": state})
    out, err = program.communicate(timeout=120)
    assert not module.get("failed"), module
    assert program.returncode == 0, err
    assert run_module("topology", {"topology": left, "state_dir": state}, check=True)["changed"] is False
    assert restore("check", path, "--state-dir", state).returncode == 0
    run_module("topology", {"topology": left, "state": "absent", "state_dir": state})
    assert restore("teardown", path, "--state-dir", state).returncode == 0
    assert leftovers(prefix) == []


def test_missing_parent_device_restores_everything_else_and_fails_loudly(prefix: str, tmp_path: Any) -> None:
    """At boot a vlan/macvlan parent NIC may never come: wait a bounded time, restore all that does
    not depend on it, exit non-zero naming it; once it is there, the next apply completes."""
    a, m = prefix + "a", prefix + "m"
    nic = prefix + "nic"
    spec = {
        "name": prefix + "parent",
        "namespaces": [
            {"name": a, "addresses": [{"dev": "in", "address": "10.237.1.2/30"}], "routes": [{"dst": "default", "via": "10.237.1.1"}]},
            {"name": m, "addresses": [{"dev": "mv0", "address": "10.237.2.2/24"}],
             "routes": [{"dst": "10.237.9.0/24", "via": "10.237.2.1"}]},
        ],
        "links": [{"type": "veth", "name": prefix + "o", "peer": "in", "peer_netns": a},
                  {"type": "macvlan", "name": "mv0", "netns": m, "parent": nic, "mode": "bridge"}],
        "host": {"addresses": [{"dev": prefix + "o", "address": "10.237.1.1/30"}]},
    }
    path, state = save_spec(tmp_path, spec)
    started = time.monotonic()
    applied = restore("apply", path, "--state-dir", state, "--wait-parents", "1.5")
    assert applied.returncode == 2
    assert time.monotonic() - started >= 1.5
    assert "parent device(s) %s did not appear within 1.5s" % nic in applied.stderr
    assert "skipped: mv0 in %s" % m in applied.stderr
    assert {a, m} <= set(netns_list())
    run(["ping", "-c", "1", "-W", "2", "10.237.1.2"])  # the independent part works
    assert "mv0" not in [l["ifname"] for l in json.loads(run(["ip", "-n", m, "-j", "link", "show"]))]
    drift = restore("check", path, "--state-dir", state)  # cannot be checked: says why
    assert drift.returncode == 2 and "parent device %s does not exist" % nic in drift.stderr
    run(["ip", "link", "add", nic, "type", "veth", "peer", "name", prefix + "nicp"])
    assert restore("apply", path, "--state-dir", state, "--wait-parents", "1").returncode == 0
    assert restore("check", path, "--state-dir", state).returncode == 0
    assert restore("teardown", path, "--state-dir", state).returncode == 0
    run(["ip", "link", "del", nic])
    assert leftovers(prefix) == []


def test_restore_program_takes_options_before_the_file(prefix: str, tmp_path: Any) -> None:
    """The boot unit's ExecStart= order: `apply --wait-parents N --state-dir DIR FILE`."""
    spec = topology(prefix, 1)
    path, state = save_spec(tmp_path, spec)
    assert restore("apply", "--wait-parents", "1", "--state-dir", state, path).returncode == 0
    assert restore("check", "--state-dir", state, path).returncode == 0
    assert restore("teardown", "--state-dir", state, path).returncode == 0
    assert leftovers(prefix) == []


def test_many_namespaces_under_systemds_default_open_file_limit(prefix: str, tmp_path: Any) -> None:
    """systemd starts services with a soft limit of 1024 open files (hard: far more); a run keeps a
    descriptor and a socket per namespace. Scaled down: 150 namespaces under a soft limit of 256."""
    spec = topology(prefix, 150)
    path, state = save_spec(tmp_path, spec)
    applied = restore("apply", path, "--state-dir", state, open_files=(256, 4096))
    assert applied.returncode == 0, applied.stderr
    assert restore("check", path, "--state-dir", state, open_files=(256, 4096)).returncode == 0
    assert restore("teardown", path, "--state-dir", state, open_files=(256, 4096)).returncode == 0
    assert leftovers(prefix) == []


def test_too_few_open_files_fails_cleanly_and_rolls_back(prefix: str, tmp_path: Any) -> None:
    """A hard limit too low for the topology: the program's own message naming EMFILE, and the
    rollback (which first gives back every descriptor the run held) leaves nothing behind; no other
    output (see also test_boot_and_exits.py)."""
    spec = topology(prefix, 150)
    path, state = save_spec(tmp_path, spec)
    applied = restore("apply", "--rollback", path, "--state-dir", state, open_files=(128, 128))
    assert applied.returncode == 2, applied.stderr
    ours = [line for line in applied.stderr.splitlines() if line.startswith("linuxnet-netns: ")]
    assert len(ours) == 1 and "EMFILE" in ours[0] and applied.stderr == ours[0] + "\n", applied.stderr
    assert "rolled back" in ours[0] and "NOT rolled back" not in ours[0], ours[0]
    assert leftovers(prefix) == []
