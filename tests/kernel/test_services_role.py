"""The topology's services (issue 18): the role writes a systemd drop-in per service under a scratch
unit directory, systemd-analyze verify accepts it and the boot unit, a re-run changes nothing, and
removing an entry (or the topology) removes exactly the role's drop-ins; bad entries, unknown,
masked or foreign-owned units fail before any change. systemd does not run this machine (PID 1 is
no systemd), so the unit checks go through the unit files and nothing is reloaded or restarted:
that part runs on booted hosts (Molecule)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Tuple

from helpers import snapshot
from test_playbooks import (ROLE_PLAYBOOK, SCRATCH_OF_THE_PLAYBOOK, changed_tasks, failed_tasks, playbook,
                            role_spec, run_playbook, task_results, tree)

NOTE_TASK = "Note the services to restart (drop-in written or removed, or namespace re-created)"
SERVICE = "[Unit]\nDescription=%s\n\n[Service]\nExecStart=/bin/true\n"


def services_spec(prefix: str, services: List[Dict[str, Any]]) -> Dict[str, Any]:
    spec = role_spec(prefix)
    spec["namespaces"][0]["nameservers"] = ["192.0.2.53"]
    spec["services"] = services
    return spec


def dropin(units: Path, unit: str, topology: str) -> Path:
    return units / (unit + ".d") / ("50-linuxnet-netns-%s.conf" % topology)


def settings(path: Path) -> Tuple[str, List[Tuple[str, str, str]]]:
    """A unit file's first line and its (section, key, value) settings, comments left out."""
    lines = path.read_text().splitlines()
    section, found = "", []
    for line in lines:
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.append((section, key, value))
    return lines[0], found


def verify(units: Path, unit: str) -> None:
    """systemd-analyze verify of a unit with its drop-ins from the scratch unit directory (then the
    system's): it exits 0 and says nothing, so no key is unknown and no value ignored."""
    env = dict(os.environ, SYSTEMD_UNIT_PATH="%s:" % units)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True, text=True, env=env, check=False)
    assert (proc.returncode, proc.stderr) == (0, ""), (unit, proc.stdout, proc.stderr)


def failure_messages(result: Dict[str, Any]) -> List[str]:
    """The message of each failed task, and of each failed item of a loop."""
    return [item.get("msg", "") for play in result["plays"] for task in play["tasks"] for host in task["hosts"].values()
            if host.get("failed") for item in [host] + host.get("results", []) if item.get("failed")]


def noted(result: Dict[str, Any]) -> List[str]:
    (note,) = task_results(result, NOTE_TASK)
    return sorted(note.get("ansible_facts", {}).get("topology_services_restart", []))


def test_services_get_verified_dropins_that_the_role_alone_removes(prefix: str, tmp_path: Path) -> None:
    scratch, units = tmp_path, tmp_path / "units"
    units.mkdir()
    (scratch / "sbin").mkdir()
    web, tpl, plain, other = prefix + "web.service", prefix + "tpl@blue.service", prefix + "p.service", prefix + "o.service"
    for name in (web, prefix + "tpl@.service", plain, other):
        (units / name).write_text(SERVICE % name)
    ours = {"units/" + name for name in (web, prefix + "tpl@.service", plain, other)}
    # someone's own drop-ins: one beside ours, one with our file name but without our marker
    mine = units / (web + ".d") / "10-mine.conf"
    mine.parent.mkdir()
    mine.write_text("[Service]\nEnvironment=MINE=1\n")
    decoy = dropin(units, other, prefix + "role")
    decoy.parent.mkdir()
    decoy.write_text("[Service]\nEnvironment=DECOY=1\n")
    theirs = {"units/%s.d/" % web, "units/%s.d/10-mine.conf" % web, "units/%s.d/" % other,
              "units/%s.d/%s" % (other, decoy.name)}
    services = [{"unit": web, "netns": prefix + "svc"},
                {"unit": tpl, "netns": prefix + "svc", "dns": False, "restart_on_recreate": False},
                {"unit": plain, "netns": prefix + "svc"}]
    spec = services_spec(prefix, services)
    extra = {"scratch": str(scratch), "topology_spec": spec}
    hosts = Path("/etc/netns") / (prefix + "svc") / "hosts"  # a file of the namespace the spec does not make
    before, files = snapshot(prefix), tree(str(scratch))
    try:
        returncode, checked = run_playbook(ROLE_PLAYBOOK, dict(extra), "--check")
        assert returncode == 0 and checked["stats"]["localhost"]["changed"] > 0, failed_tasks(checked)
        assert noted(checked) == sorted([web, tpl, plain])
        assert snapshot(prefix) == before and tree(str(scratch)) == files

        hosts.parent.mkdir(parents=True)
        hosts.write_text("192.0.2.80 web.example\n")
        returncode, applied = run_playbook(ROLE_PLAYBOOK, dict(extra))
        assert returncode == 0, failed_tasks(applied)
        assert noted(applied) == sorted([web, tpl, plain])
        boot = "linuxnet-netns-%srole.service" % prefix
        netns_path = "/run/netns/%ssvc" % prefix
        marker = "# linuxnet.netns drop-in of topology %srole: runs %s in network namespace %ssvc."
        bound = [("Unit", "Requires", boot), ("Unit", "BindsTo", boot), ("Unit", "After", boot)]
        joined = [("Service", "NetworkNamespacePath", netns_path), ("Service", "PrivateMounts", "yes")]
        dns = [("Service", "BindReadOnlyPaths", "-/etc/netns/%ssvc/hosts:/etc/hosts" % prefix),
               ("Service", "BindReadOnlyPaths", "/etc/netns/%ssvc/resolv.conf:/etc/resolv.conf" % prefix)]
        assert settings(dropin(units, web, prefix + "role")) == (marker % (prefix, web, prefix), bound + joined + dns)
        assert settings(dropin(units, tpl, prefix + "role")) == (
            marker % (prefix, tpl, prefix), [("Unit", "Wants", boot), ("Unit", "After", boot)] + joined)
        assert settings(dropin(units, plain, prefix + "role"))[1] == bound + joined + dns
        assert oct(dropin(units, web, prefix + "role").stat().st_mode & 0o777) == "0o644"
        for unit in (boot, web, tpl, plain):
            verify(units, unit)

        returncode, again = run_playbook(ROLE_PLAYBOOK, dict(extra))
        assert returncode == 0 and again["stats"]["localhost"]["changed"] == 0, changed_tasks(again)
        assert noted(again) == []
        assert playbook(ROLE_PLAYBOOK, dict(extra), "--check")["changed"] == 0

        # an entry leaves the spec: its drop-in and the directory the role made for it go
        spec["services"] = services[:2]
        returncode, fewer = run_playbook(ROLE_PLAYBOOK, dict(extra, topology_spec=spec))
        assert returncode == 0, failed_tasks(fewer)
        assert noted(fewer) == [plain]
        assert not (units / (plain + ".d")).exists()
        assert dropin(units, web, prefix + "role").is_file() and dropin(units, tpl, prefix + "role").is_file()
        assert mine.read_text() == "[Service]\nEnvironment=MINE=1\n" and decoy.read_text() == "[Service]\nEnvironment=DECOY=1\n"

        hosts.unlink()
        returncode, removed = run_playbook(ROLE_PLAYBOOK, dict(extra, topology_spec=spec, topology_state="absent"))
        assert returncode == 0, failed_tasks(removed)
        assert noted(removed) == sorted([web, tpl])
        assert snapshot(prefix) == before
        # what is left is what the playbook and the test made: the role's own files are gone
        assert tree(str(scratch)) == sorted(set(SCRATCH_OF_THE_PLAYBOOK) | ours | theirs)
        assert mine.read_text() == "[Service]\nEnvironment=MINE=1\n" and decoy.read_text() == "[Service]\nEnvironment=DECOY=1\n"
        assert playbook(ROLE_PLAYBOOK, dict(extra, topology_spec=spec, topology_state="absent"))["changed"] == 0
    finally:
        if hosts.exists():
            hosts.unlink()


def test_bad_services_fail_before_any_change(prefix: str, tmp_path: Path) -> None:
    """Every refusal comes before the first change: nothing in the kernel, no file written."""
    web = prefix + "web.service"
    netns = prefix + "svc"
    # (words of the message, the entry, what the unit directory has)
    cases: List[Tuple[str, Dict[str, Any], Any]] = [
        ("no unit file for", {"unit": prefix + "none.service", "netns": netns}, None),
        ("(masked: ", {"unit": prefix + "mask.service", "netns": netns}, "mask"),
        ("no unit file for", {"unit": prefix + "none@x.service", "netns": netns}, None),
        ("another topology puts", {"unit": web, "netns": netns}, "foreign"),
        ("no symbolic link", {"unit": web, "netns": netns}, "linked"),
        ("topology_spec.services[0]: unit", {"unit": "../%s" % web, "netns": netns}, None),
        ("topology_spec.services[0]: unit", {"unit": web + "\n", "netns": netns}, None),
        ("topology_spec.services[0]: unit", {"unit": web, "netns": prefix + "none"}, None),
        ("need topology_boot: true", {"unit": web, "netns": netns}, "noboot"),
    ]
    before = snapshot(prefix)
    for number, (case, service, setup) in enumerate(cases):
        scratch = tmp_path / str(number)
        units = scratch / "units"
        units.mkdir(parents=True)
        (scratch / "sbin").mkdir()
        (units / web).write_text(SERVICE % web)
        extra: Dict[str, Any] = {"scratch": str(scratch), "topology_spec": services_spec(prefix, [service])}
        if setup == "mask":
            (units / service["unit"]).symlink_to("/dev/null")
        elif setup == "foreign":
            dropin(units, web, "elsewhere").parent.mkdir()
            dropin(units, web, "elsewhere").write_text(
                "# linuxnet.netns drop-in of topology elsewhere: runs %s in network namespace x.\n" % web)
        elif setup == "linked":
            (scratch / "away").mkdir()
            (units / (web + ".d")).symlink_to(scratch / "away")
        elif setup == "noboot":
            extra["topology_boot"] = False
        files = tree(str(scratch))
        returncode, result = run_playbook(ROLE_PLAYBOOK, extra)
        failed = failed_tasks(result)
        assert returncode != 0 and len(failed) == 1, (case, failed)
        assert case in " ".join(failure_messages(result)), (case, failure_messages(result))
        assert tree(str(scratch)) == files, (case, tree(str(scratch)))
        assert snapshot(prefix) == before, case
