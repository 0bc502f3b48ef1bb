"""Modules and roles through ansible-playbook on localhost: check -> apply -> re-apply -> check."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List

from helpers import COLLECTIONS, REPO, netns_list, snapshot

PLAYBOOK_BIN = os.path.join(os.path.dirname(os.path.realpath(os.sys.executable)), "ansible-playbook")


def playbook(path: str, extra: Dict[str, Any], *options: str) -> Dict[str, Any]:
    """Run a playbook on localhost; returns per-task stats from the json callback."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_STDOUT_CALLBACK="test_json",
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, "tests", "callback_plugins"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    binary = PLAYBOOK_BIN if os.path.exists(PLAYBOOK_BIN) else "ansible-playbook"
    proc = subprocess.run([binary, "-i", os.path.join(REPO, "playbooks", "localhost.yml"), path,
                           "-e", json.dumps(extra)] + list(options),
                          capture_output=True, text=True, env=env, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("no JSON from ansible-playbook (rc=%d): %s %s" % (proc.returncode, proc.stdout[-3000:],
                                                                              proc.stderr[-3000:])) from None
    stats = result["stats"]["localhost"]
    assert proc.returncode == 0 and stats["failures"] == 0 and stats["unreachable"] == 0, \
        json.dumps(failed_tasks(result), indent=1)
    return stats


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


def test_role_applies_persists_and_removes(prefix: str, tmp_path: Any) -> None:
    role = os.path.join(REPO, "tests", "playbooks", "role_localhost.yml")
    scratch = str(tmp_path)
    extra = {"scratch": scratch, "topology_spec": role_spec(prefix)}
    before = snapshot(prefix)
    assert playbook(role, dict(extra), "--check")["changed"] > 0
    assert snapshot(prefix) == before
    assert playbook(role, dict(extra))["changed"] > 0
    assert playbook(role, dict(extra))["changed"] == 0
    saved = os.path.join(scratch, "etc", prefix + "role.json")
    assert oct(os.stat(saved).st_mode & 0o777) == "0o600" and os.stat(saved).st_uid == 0
    unit = os.path.join(scratch, "units", "linuxnet-netns-%srole.service" % prefix)
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    program = os.path.join(scratch, "sbin", "linuxnet-netns")
    check = subprocess.run([program, "check", saved, "--state-dir", os.path.join(scratch, "state")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert playbook(role, dict(extra, topology_state="absent"))["changed"] > 0
    assert snapshot(prefix) == before
    assert not os.path.exists(saved) and not os.path.exists(unit) and not os.path.exists(program)


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
    before = {root: _tree_listing(root) for root in watched}
    spec = {"name": prefix + "chk", "namespaces": [{"name": prefix + "ck"}]}
    stats = playbook(str(path), {"spec": spec, "scratch": str(tmp_path)})
    assert stats["changed"] == 2
    assert not os.path.exists(tmp_path / "state")
    after = {root: _tree_listing(root) for root in watched}
    for root in watched:
        assert after[root] - before[root] == set(), "check mode wrote %s" % sorted(after[root] - before[root])


def _tree_listing(root: str) -> set:
    """Every path under ``root`` (not following links), without /run's and /var/lib's churn of others."""
    found = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(directory, d))]
        found.update(os.path.join(directory, name) for name in files + dirs)
    return {p for p in found if "/systemd/" not in p and "/apt/" not in p and "/dpkg/" not in p}


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
