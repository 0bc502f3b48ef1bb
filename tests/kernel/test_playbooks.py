"""Modules and roles through ansible-playbook on localhost: check -> apply -> re-apply -> check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Tuple

from helpers import COLLECTIONS, REPO, netns_list, snapshot

PLAYBOOK_BIN = os.path.join(os.path.dirname(os.path.realpath(os.sys.executable)), "ansible-playbook")


def run_playbook(path: str, extra: Dict[str, Any], *options: str) -> Tuple[int, Dict[str, Any]]:
    """Run a playbook on localhost; returns its exit code and the whole run from the json callback."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_STDOUT_CALLBACK="test_json",
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, "tests", "callback_plugins"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    binary = PLAYBOOK_BIN if os.path.exists(PLAYBOOK_BIN) else "ansible-playbook"
    proc = subprocess.run([binary, "-i", os.path.join(REPO, "playbooks", "inventory", "localhost.yml"), path,
                           "-e", json.dumps(extra)] + list(options),
                          capture_output=True, text=True, env=env, check=False)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("no JSON from ansible-playbook (rc=%d): %s %s" % (proc.returncode, proc.stdout[-3000:],
                                                                               proc.stderr[-3000:])) from None


def playbook(path: str, extra: Dict[str, Any], *options: str) -> Dict[str, Any]:
    """Run a playbook on localhost that must succeed; returns per-task stats from the json callback."""
    returncode, result = run_playbook(path, extra, *options)
    stats = result["stats"]["localhost"]
    assert returncode == 0 and stats["failures"] == 0 and stats["unreachable"] == 0, \
        json.dumps(failed_tasks(result), indent=1)
    return stats


def task_results(result: Dict[str, Any], name: str) -> List[Dict[str, Any]]:
    """localhost's result of each run of the task called ``name``."""
    return [t["hosts"]["localhost"] for play in result["plays"] for t in play["tasks"]
            if t["task"]["name"].split(" : ")[-1] == name and "localhost" in t["hosts"]]


def changed_tasks(result: Dict[str, Any]) -> List[Any]:
    return [(t["task"]["name"], h.get("changes") or h.get("diff")) for play in result["plays"] for t in play["tasks"]
            for h in t["hosts"].values() if h.get("changed")]


def failed_tasks(result: Dict[str, Any]) -> List[Any]:
    return [(t["task"]["name"], h.get("msg")) for play in result["plays"] for t in play["tasks"]
            for h in t["hosts"].values() if h.get("failed")]


def demo_vars(prefix: str, state: str) -> Dict[str, Any]:
    return {"state": state, "demo_netns": prefix + "msb", "demo_root_end": prefix + "v0",
            "demo_ns_end": "veth1", "demo_root_address": "192.168.50.3/24", "demo_ns_address": "192.168.50.2/24"}


def test_demo_playbook_check_apply_reapply_check_absent(prefix: str) -> None:
    demo = os.path.join(REPO, "playbooks", "demo.yml")
    before = snapshot(prefix)
    # check mode on a host without the topology predicts changes and makes none
    # (verification tasks are skipped in check mode: nothing to verify yet)
    checked = playbook(demo, dict(demo_vars(prefix, "present"), demo_verify=False), "--check", "--diff")
    assert checked["changed"] > 0
    assert snapshot(prefix) == before
    applied = playbook(demo, demo_vars(prefix, "present"), "--diff")
    assert applied["changed"] >= 6
    assert prefix + "msb" in netns_list()
    assert playbook(demo, demo_vars(prefix, "present"))["changed"] == 0
    assert playbook(demo, demo_vars(prefix, "present"), "--check")["changed"] == 0
    removed = playbook(demo, demo_vars(prefix, "absent"))
    assert removed["changed"] == 1
    assert playbook(demo, demo_vars(prefix, "absent"))["changed"] == 0
    assert snapshot(prefix) == before


def role_spec(prefix: str) -> Dict[str, Any]:
    ns = prefix + "svc"
    return {"name": prefix + "role",
            "namespaces": [{"name": ns, "sysctls": {"net.ipv4.ip_forward": 1},
                            "addresses": [{"dev": "eth0", "address": "10.235.0.2/30"}],
                            "routes": [{"dst": "default", "via": "10.235.0.1"}],
                            "iptables": [{"table": "filter", "chains": [{"name": "INPUT", "rules": ["-p tcp --dport 22 -j ACCEPT"]}]}]}],
            "links": [{"type": "veth", "name": prefix + "h", "peer": "eth0", "peer_netns": ns}],
            "host": {"addresses": [{"dev": prefix + "h", "address": "10.235.0.1/30"}]}}


ROLE_PLAYBOOK = os.path.join(REPO, "tests", "playbooks", "role_localhost.yml")
# What tests/playbooks/role_localhost.yml itself makes in the scratch directory before the role runs.
SCRATCH_OF_THE_PLAYBOOK = ["sbin/", "units/"]


def tree(top: str) -> List[str]:
    """Every directory (with a trailing /) and file under ``top``, relative to it, sorted."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(top):
        relative = os.path.relpath(dirpath, top)
        entries += [os.path.normpath(os.path.join(relative, d)) + "/" for d in dirnames]
        entries += [os.path.normpath(os.path.join(relative, f)) for f in filenames]
    return sorted(entries)


def test_role_applies_persists_and_removes(prefix: str, tmp_path: Any) -> None:
    scratch = str(tmp_path)
    extra = {"scratch": scratch, "topology_spec": role_spec(prefix)}
    before = snapshot(prefix)
    assert playbook(ROLE_PLAYBOOK, dict(extra), "--check")["changed"] > 0
    assert snapshot(prefix) == before
    assert playbook(ROLE_PLAYBOOK, dict(extra))["changed"] > 0
    returncode, again = run_playbook(ROLE_PLAYBOOK, dict(extra))
    assert returncode == 0 and again["stats"]["localhost"]["changed"] == 0, changed_tasks(again)
    assert playbook(ROLE_PLAYBOOK, dict(extra), "--check")["changed"] == 0
    saved = os.path.join(scratch, "etc", prefix + "role.json")
    assert oct(os.stat(saved).st_mode & 0o777) == "0o600" and os.stat(saved).st_uid == 0
    unit = os.path.join(scratch, "units", "linuxnet-netns-%srole.service" % prefix)
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
    program = os.path.join(scratch, "sbin", "linuxnet-netns")
    check = subprocess.run([program, "check", saved, "--state-dir", os.path.join(scratch, "state")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert playbook(ROLE_PLAYBOOK, dict(extra, topology_state="absent"))["changed"] > 0
    assert snapshot(prefix) == before
    # nothing of the topology is left: no unit, saved topology, ownership record, remembered tables,
    # engine, program or directory the role made
    assert tree(scratch) == SCRATCH_OF_THE_PLAYBOOK
    assert playbook(ROLE_PLAYBOOK, dict(extra, topology_state="absent"))["changed"] == 0
    assert tree(scratch) == SCRATCH_OF_THE_PLAYBOOK


def test_role_absent_removes_its_topology_only(prefix: str, tmp_path: Any) -> None:
    """Absent of one topology keeps the other's files and the shared program; absent of the last
    removes the program and engine and only the directories left empty: files of others stay."""
    scratch = str(tmp_path)
    first, second = role_spec(prefix), {"name": prefix + "rol2", "namespaces": [{"name": prefix + "s2"}]}
    before = snapshot(prefix)
    for spec in (first, second):
        playbook(ROLE_PLAYBOOK, {"scratch": scratch, "topology_spec": spec})
    foreign = ["etc/README", "lib/other.py", "state/notes.txt"]
    for name in foreign:
        with open(os.path.join(scratch, name), "w") as handle:
            handle.write("not the role's\n")
    playbook(ROLE_PLAYBOOK, {"scratch": scratch, "topology_spec": first, "topology_state": "absent"})
    left = tree(scratch)
    assert not [path for path in left if os.path.basename(path).startswith(first["name"] + ".")
                or first["name"] + ".service" in path], left
    assert {"etc/%s.json" % second["name"], "state/%s.owned.json" % second["name"], "sbin/linuxnet-netns",
            "units/linuxnet-netns-%s.service" % second["name"], "lib/linuxnet_netns_engine/cli.py"} <= set(left)
    playbook(ROLE_PLAYBOOK, {"scratch": scratch, "topology_spec": second, "topology_state": "absent"})
    assert snapshot(prefix) == before
    assert tree(scratch) == sorted(SCRATCH_OF_THE_PLAYBOOK + foreign + ["etc/", "lib/", "state/"])


def test_role_fails_when_the_boot_interpreter_lacks_pyroute2(prefix: str, tmp_path: Any) -> None:
    """The unit's interpreter cannot run the restore program: the role fails, saying why, and
    installs no unit (the topology is applied, the error says it would not come back at boot)."""
    python = str(tmp_path / "bare" / "bin" / "python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    scratch = str(tmp_path / "scratch")
    extra = {"scratch": scratch, "topology_spec": role_spec(prefix), "topology_python": python,
             "topology_install_packages": False}
    before = snapshot(prefix)
    returncode, result = run_playbook(ROLE_PLAYBOOK, extra)
    failed = failed_tasks(result)
    assert returncode != 0 and len(failed) == 1, failed
    message = failed[0][1]
    assert "pyroute2 is not installed" in message and python in message and "boot" in message, message
    assert not os.listdir(os.path.join(scratch, "units"))
    playbook(ROLE_PLAYBOOK, dict(extra, topology_state="absent"))
    assert snapshot(prefix) == before
    assert tree(scratch) == SCRATCH_OF_THE_PLAYBOOK


def test_role_refuses_unsafe_values_before_writing_anything(prefix: str, tmp_path: Any) -> None:
    """Every value the role renders into the unit, the program or a path is checked whole before
    the first change: a trailing newline, a space, a quote, a relative path, a bool for a number."""
    before = snapshot(prefix)
    for number, (overrides, named) in enumerate([
            ({"topology_spec": dict(role_spec(prefix), name=prefix + "role\n")}, "topology_spec.name"),
            ({"topology_spec": dict(role_spec(prefix), name="-" + prefix)}, "topology_spec.name"),
            ({"topology_etc_dir": "{{ scratch }}/etc\nExecStartPre=/x"}, "topology_etc_dir"),
            ({"topology_program": "{{ scratch }}/sbin/linuxnet-netns --purge"}, "topology_program"),
            ({"topology_lib_dir": '{{ scratch }}/lib");import os;("'}, "topology_lib_dir"),
            ({"topology_state_dir": "{{ scratch }}/state/../etc"}, "topology_state_dir"),
            ({"topology_python": "python3"}, "topology_python"),
            ({"topology_wait_parents": True}, "topology_wait_parents"),
            ({"topology_state_dir": "{{ scratch }}/etc"}, "topology_state_dir")]):
        scratch = str(tmp_path / str(number))
        returncode, result = run_playbook(ROLE_PLAYBOOK, dict({"scratch": scratch,
                                                               "topology_spec": role_spec(prefix)}, **overrides))
        failed = failed_tasks(result)
        assert returncode != 0 and len(failed) == 1 and named in str(failed[0][1]), (overrides, failed)
        assert tree(scratch) == SCRATCH_OF_THE_PLAYBOOK, (overrides, tree(scratch))
        assert snapshot(prefix) == before, overrides


def test_role_installs_the_host_packages_by_default(prefix: str, tmp_path: Any) -> None:
    """python3-pyroute2 and iptables through the OS package manager, only those dpkg does not have
    (here in check mode only: the test installs nothing on this machine); none with
    topology_install_packages: false."""
    extra = {"scratch": str(tmp_path), "topology_spec": role_spec(prefix), "topology_install_packages": True}
    name = "Install the packages the topology and its boot need"
    status = subprocess.run(["dpkg-query", "--show", "--showformat", "${Package} ${db:Status-Status}\\n",
                             "--", "python3-pyroute2", "iptables", "linuxnet-no-such-package"],
                            capture_output=True, text=True, check=False).stdout.split("\n")  # exits 1: one name is unknown on purpose
    missing = sorted({"python3-pyroute2", "iptables"} - {line.split()[0] for line in status if line.endswith(" installed")})
    returncode, result = run_playbook(ROLE_PLAYBOOK, dict(extra, topology_packages=["python3-pyroute2", "iptables"]),
                                      "--check")
    assert returncode == 0, failed_tasks(result)
    (package,) = task_results(result, name)
    assert bool(package.get("skipped")) is not bool(missing) and bool(package.get("changed")) is bool(missing), package
    # a package apt does not know is not taken for installed: the install is tried, and fails naming it
    returncode, result = run_playbook(ROLE_PLAYBOOK, dict(extra, topology_packages=["iptables",
                                                                                    "linuxnet-no-such-package"]),
                                      "--check")
    assert returncode != 0 and "linuxnet-no-such-package" in json.dumps(failed_tasks(result)), failed_tasks(result)
    returncode, result = run_playbook(ROLE_PLAYBOOK, dict(extra, topology_install_packages=False), "--check")
    assert returncode == 0 and task_results(result, name)[0].get("skipped"), failed_tasks(result)


def test_check_mode_writes_no_file_anywhere(prefix: str, tmp_path: Any) -> None:
    """A check-mode play of every module writes nothing on the host: no state file, no compiled code
    (the modules keep no bytecode cache), nothing under /var or /etc that was not there before."""
    path = tmp_path / "check.yml"
    path.write_text("""
- hosts: localhost
  gather_facts: false
  check_mode: true
  tasks:
    - linuxnet.netns.topology: {topology: "{{ spec }}", state_dir: "{{ scratch }}/state"}
    - linuxnet.netns.netns: {name: "{{ spec.namespaces[0].name }}", nameservers: [192.0.2.53]}
    - linuxnet.netns.netns_info: {names: ["{{ spec.namespaces[0].name }}"]}
""")
    watched = ["/var/cache", "/var/lib", "/etc", "/run"]
    before = {root: _tree_listing(root, prefix) for root in watched}
    spec = {"name": prefix + "chk", "namespaces": [{"name": prefix + "ck"}]}
    stats = playbook(str(path), {"spec": spec, "scratch": str(tmp_path)})
    assert stats["changed"] == 2
    assert not os.path.exists(tmp_path / "state")
    after = {root: _tree_listing(root, prefix) for root in watched}
    for root in watched:
        assert after[root] - before[root] == set(), "check mode wrote %s" % sorted(after[root] - before[root])


def _tree_listing(root: str, prefix: str) -> set:
    """Every path under ``root`` (not following links), without the churn of others: systemd's and
    the package manager's files, and the names of other tests (``ln...`` not ``prefix``), which other
    runs on the machine make and remove meanwhile."""
    found = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(directory, d))]
        found.update(os.path.join(directory, name) for name in files + dirs)
    return {p for p in found if "/systemd/" not in p and "/apt/" not in p and "/dpkg/" not in p
            and not any(part.startswith("ln") and not part.startswith(prefix) for part in p.split("/"))}


def test_async_and_check_mode_through_the_action(prefix: str, tmp_path: Any) -> None:
    path = tmp_path / "async.yml"
    path.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: the topology module started in the background and polled
      linuxnet.netns.topology:
        topology: "{{ spec }}"
        state_dir: "{{ scratch }}/state"
      async: 120
      poll: 1
      register: applied
    - name: checked in the background, nothing to change
      linuxnet.netns.topology:
        topology: "{{ spec }}"
        state_dir: "{{ scratch }}/state"
      async: 120
      poll: 1
      check_mode: true
      register: checked
    - ansible.builtin.assert:
        that: [applied is changed, checked is not changed, applied.summary.netns.create == 1]
    - name: removed in the background
      linuxnet.netns.topology:
        topology: "{{ spec }}"
        state: absent
        state_dir: "{{ scratch }}/state"
      async: 120
      poll: 1
""")
    before = snapshot(prefix)
    spec = {"name": prefix + "async", "namespaces": [{"name": prefix + "as"}]}
    stats = playbook(str(path), {"spec": spec, "scratch": str(tmp_path)})
    assert stats["changed"] == 2
    assert snapshot(prefix) == before


FLEET_PLAYBOOK = os.path.join(REPO, "playbooks", "fleet.yml")


def fleet_vars(prefix: str, scratch: str, **overrides: Any) -> Dict[str, Any]:
    """playbooks/fleet.yml on this machine as its one host, every path of the role under ``scratch``."""
    ns = prefix + "fl"
    spec = {"name": prefix + "fleet",
            "namespaces": [{"name": ns, "addresses": [{"dev": "eth0", "address": "10.236.0.2/30"}]}],
            "links": [{"type": "veth", "name": prefix + "f", "peer": "eth0", "peer_netns": ns}],
            "host": {"addresses": [{"dev": prefix + "f", "address": "10.236.0.1/30"}]}}
    return dict({"fleet_hosts": "localhost", "ansible_become": False, "topology_spec": spec,
                 "topology_etc_dir": scratch + "/etc", "topology_state_dir": scratch + "/state",
                 "topology_lib_dir": scratch + "/lib", "topology_program": scratch + "/sbin/linuxnet-netns",
                 "topology_unit_dir": scratch + "/units", "topology_python": sys.executable,
                 "topology_install_packages": False}, **overrides)


def ran(result: Dict[str, Any], name: str) -> bool:
    return any(not r.get("skipped") for r in task_results(result, name))


def test_fleet_rollout_verifies_without_the_boot_unit_and_removes(prefix: str, tmp_path: Any) -> None:
    """The fleet playbook's verification runs whether the boot unit is on or off, and also for
    removal (it used to check the file the role had just removed, and stop the rollout)."""
    scratch = str(tmp_path)
    for sub in ("sbin", "units"):
        os.makedirs(os.path.join(scratch, sub))
    before = snapshot(prefix)
    engine_check = "Verify the host against its topology (the engine's check, no boot unit)"
    program_check = "Verify the host against its saved topology (exit 0 = the kernel matches it)"
    gone = "Check that the topology is gone"
    for boot in (False, True):
        extra = fleet_vars(prefix, scratch, topology_boot=boot)
        returncode, checked = run_playbook(FLEET_PLAYBOOK, extra, "--check", "--diff")
        assert returncode == 0, failed_tasks(checked)
        assert snapshot(prefix) == before
        # the diff is the topology's: the engine the role copies is not in it
        copies = [r for t in task_results(checked, "Install the engine (no Ansible needed on the host)")
                  for r in t.get("results", [t])]
        assert copies and not any(r.get("diff") for r in copies), copies[:1]
        returncode, applied = run_playbook(FLEET_PLAYBOOK, extra, "--diff")
        assert returncode == 0, failed_tasks(applied)
        assert ran(applied, engine_check) is not boot and ran(applied, program_check) is boot
        assert prefix + "fl" in netns_list()
        returncode, again = run_playbook(FLEET_PLAYBOOK, extra)
        assert returncode == 0 and again["stats"]["localhost"]["changed"] == 0, changed_tasks(again)
        returncode, removed = run_playbook(FLEET_PLAYBOOK, dict(extra, topology_state="absent"))
        assert returncode == 0, failed_tasks(removed)
        assert ran(removed, gone) and not ran(removed, program_check) and not ran(removed, engine_check)
        assert snapshot(prefix) == before
        assert not os.path.exists(os.path.join(scratch, "etc", prefix + "fleet.json"))


def test_fleet_absent_check_finds_what_is_left(prefix: str, tmp_path: Any) -> None:
    """The removal's verification fails when a namespace of the topology is still there (here one
    the topology never created, so the role leaves it: its name is declared, it is not ours)."""
    scratch = str(tmp_path)
    extra = fleet_vars(prefix, scratch, topology_boot=False, topology_state="absent")
    stray = prefix + "fl"
    subprocess.run(["ip", "netns", "add", stray], check=True)
    try:
        returncode, result = run_playbook(FLEET_PLAYBOOK, extra)
        failed = failed_tasks(result)
        assert returncode != 0 and [name for name, _msg in failed] == ["Check that the topology is gone"], failed
        assert stray in str(failed[0][1])
    finally:
        subprocess.run(["ip", "netns", "delete", stray], check=False)


def test_playbooks_ansible_cfg_turns_on_pipelining() -> None:
    """What README recommends for fleets: playbooks/ansible.cfg, read when ansible-playbook starts there."""
    binary = os.path.join(os.path.dirname(PLAYBOOK_BIN), "ansible-config")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    proc = subprocess.run([binary if os.path.exists(binary) else "ansible-config", "dump", "--only-changed",
                           "--format", "json"], cwd=os.path.join(REPO, "playbooks"), env=env,
                          capture_output=True, text=True, check=True)
    settings = {item["name"]: item for item in json.loads(proc.stdout)}
    assert settings["ANSIBLE_PIPELINING"]["value"] is True
    assert settings["ANSIBLE_PIPELINING"]["origin"] == os.path.join(REPO, "playbooks", "ansible.cfg")
