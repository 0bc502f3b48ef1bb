"""The netns module against the real kernel: check -> apply -> re-apply -> check, every option."""

from __future__ import annotations

import os
import subprocess

import pytest

from helpers import converge, netns_list, run, run_module, snapshot


def test_create_and_delete(prefix: str) -> None:
    name = prefix + "a"
    applied = converge("netns", {"name": name}, prefix)
    assert name in netns_list()
    info = applied["netns"]
    assert info["exists"] and info["path"] == "/run/netns/" + name
    assert info["id"] == os.stat("/run/netns/" + name).st_ino
    assert info["pids"] == []
    # lo comes up by default
    assert "UP" in run(["ip", "-n", name, "-j", "link", "show", "lo"])
    removed = converge("netns", {"name": name, "state": "absent"}, prefix)
    assert removed["netns"] == {"name": name, "exists": False, "nameservers": None}
    assert name not in netns_list()


def test_exact_name_match_not_substring(prefix: str) -> None:
    """community.general.ip_netns bug: 'mario' counted as present when 'mario2' exists."""
    run(["ip", "netns", "add", prefix + "mario2"])
    result = run_module("netns", {"name": prefix + "mario"}, check=True)
    assert result["changed"] is True
    assert result["netns"]["exists"] is False


def test_check_mode_never_creates(prefix: str) -> None:
    name = prefix + "ghost"
    result = run_module("netns", {"name": name, "sysctls": {"net.ipv4.ip_forward": 1}}, check=True)
    assert result["changed"] is True
    assert name not in netns_list()
    assert not os.path.exists("/run/netns/" + name)


def test_sysctls_and_nameservers(prefix: str) -> None:
    name = prefix + "s"
    args = {"name": name, "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": "1"},
            "nameservers": ["192.0.2.53", "2001:db8::53"]}
    applied = converge("netns", args, prefix)
    assert run(["sysctl", "-n", "net.ipv4.ip_forward"], ns=name).strip() == "1"
    assert applied["netns"]["sysctls"] == {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
    with open("/etc/netns/%s/resolv.conf" % name) as handle:
        text = handle.read()
    assert "nameserver 192.0.2.53\nnameserver 2001:db8::53\n" in text
    assert applied["diff"]["after"]["sysctl net.ipv4.ip_forward in netns %s" % name] == {"value": "1"}
    # change one value: only that sysctl changes
    args["sysctls"]["net.ipv4.ip_forward"] = 0
    changed = run_module("netns", args)
    assert [c["kind"] for c in changed["changes"]] == ["sysctl"]
    assert changed["diff"]["before"] == {"sysctl net.ipv4.ip_forward in netns %s" % name: {"value": "1"}}
    # an empty list removes our resolv.conf
    converge("netns", {"name": name, "nameservers": []}, prefix)
    assert not os.path.exists("/etc/netns/%s" % name)


def test_lo_down_and_unmanaged(prefix: str) -> None:
    name = prefix + "l"
    run(["ip", "netns", "add", name])
    assert run_module("netns", {"name": name, "loopback": "unmanaged"})["changed"] is False
    converge("netns", {"name": name, "loopback": "up"}, prefix)
    assert run_module("netns", {"name": name, "loopback": "unmanaged"})["changed"] is False
    converge("netns", {"name": name, "loopback": "down"}, prefix)


def test_absent_waits_for_veth_peer(prefix: str) -> None:
    """Deleting a namespace removes its veth ends asynchronously: an immediate re-create of the
    same veth must work (EEXIST otherwise)."""
    for _round in range(3):
        name = prefix + "w"
        run(["ip", "netns", "add", name])
        run(["ip", "link", "add", prefix + "v0", "type", "veth", "peer", "name", prefix + "v1",
             "netns", name])
        result = run_module("netns", {"name": name, "state": "absent"})
        assert result["changed"] is True
        subprocess.run(["ip", "link", "add", prefix + "v0", "type", "veth", "peer", "name", prefix + "v1"],
                       check=True)
        run(["ip", "link", "delete", prefix + "v0"])


def test_held_namespace_reports_pids(prefix: str) -> None:
    name = prefix + "p"
    run(["ip", "netns", "add", name])
    holder = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "30"])
    try:
        for _attempt in range(100):
            result = run_module("netns", {"name": name})
            if result["netns"]["pids"]:
                break
        assert result["changed"] in (True, False)
        assert holder.pid in result["netns"]["pids"] or result["netns"]["pids"]
    finally:
        holder.kill()
        holder.wait()


BAD_INPUTS = [
    ({"name": ""}, "non-empty"),
    ({"name": "../etc"}, "not allowed"),
    ({"name": "a/b"}, "not allowed"),
    ({"name": ".."}, "not allowed"),
    ({"name": "a\x00b"}, "not allowed"),
    ({"name": "-x"}, "must not start"),
    ({"name": "a b"}, "whitespace"),
    ({"name": "x" * 256}, "longer than"),
    ({"name": "ok", "sysctls": {"kernel.hostname": "x"}}, "only net.* keys"),
    ({"name": "ok", "sysctls": {"net.ipv4.../x": "1"}}, "only net.* keys"),
    ({"name": "ok", "sysctls": {"net.ipv4.ip_forward\n": "1"}}, "only net.* keys"),
    ({"name": "ok\n"}, "whitespace"),
    ({"name": "ok", "nameservers": ["not-an-ip"]}, "not a valid IP"),
    # the kernel would refuse these once the namespace exists: tried in a throw-away one first
    ({"name": "ok", "sysctls": {"net.ipv4.ip_forward": "abc"}}, "refuses the value"),
    ({"name": "ok", "sysctls": {"net.ipv4.ip_forward": "1\n0"}}, "one line"),
    ({"name": "ok", "sysctls": {"net.ipv4.ip_forward": "1 2"}}, "keeps '1'"),
    ({"name": "ok", "sysctls": {"net.core.netdev_max_backlog": 1000}}, "no such sysctl in a new namespace"),
    ({"name": "ok", "sysctls": {"net.ipv4.conf.eth9.forwarding": 1}}, "no such sysctl in a new namespace"),
    ({"name": "ok", "sysctls": {"net.ipv4.conf.all.mc_forwarding": 1}}, "does not let it be set"),
    ({"name": "ok", "state": "gone"}, "value of state must be one of"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_fails_cleanly_and_changes_nothing(prefix: str, args: dict, message: str) -> None:
    args = dict(args)
    if args["name"].startswith("ok"):
        args["name"] = prefix + args["name"]
    before = snapshot(prefix)
    result = run_module("netns", args)
    assert result.get("failed") is True
    assert message in result["msg"]
    assert snapshot(prefix) == before


def test_unknown_sysctl_fails_before_change(prefix: str) -> None:
    name = prefix + "u"
    run(["ip", "netns", "add", name])
    before = snapshot(prefix)
    result = run_module("netns", {"name": name, "sysctls": {"net.ipv4.ip_forward": 1,
                                                            "net.ipv4.no_such_thing": 1}})
    assert result["failed"] and "no such sysctl" in result["msg"]
    assert snapshot(prefix) == before


def test_sysctls_the_kernel_refuses_fail_before_change(prefix: str) -> None:
    """In a namespace that exists, a value the kernel refuses fails before the keys sorted ahead of
    it are set; a per-interface key of a link there is tried on lo's twin key."""
    name = prefix + "v"
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
    before = snapshot(prefix)
    for sysctls, field in (({"net.ipv4.conf.all.forwarding": 1, "net.ipv4.ip_forward": "abc"},
                            "sysctls.net.ipv4.ip_forward"),
                           ({"net.ipv4.conf.all.forwarding": 1, "net.ipv4.conf.v0.rp_filter": "strict"},
                            "sysctls.net.ipv4.conf.v0.rp_filter")):
        result = run_module("netns", {"name": name, "sysctls": sysctls})
        assert result["failed"] and result["object"] == field and "refuses the value" in result["msg"], result
        assert snapshot(prefix) == before
    good = run_module("netns", {"name": name, "sysctls": {"net.ipv4.conf.v0.rp_filter": 2}})
    assert good["changed"] and not good.get("failed"), good
    assert run(["cat", "/proc/sys/net/ipv4/conf/v0/rp_filter"], ns=name).strip() == "2"


def test_missing_pyroute2_gives_ansibles_missing_library_message(prefix: str, tmp_path) -> None:
    """A host without pyroute2: the module fails with missing_required_lib's message, no traceback."""
    shadow = tmp_path / "pyroute2"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('No module named pyroute2 (simulated)')\n")
    result = run_module("netns", {"name": prefix + "lib"}, python_path=str(tmp_path))
    assert result["failed"] and "Failed to import the required Python library (pyroute2)" in result["msg"]
    assert prefix + "lib" not in netns_list()


def test_check_mode_needs_no_pyroute2(prefix: str, tmp_path) -> None:
    """A host where pyroute2 is not installed at all (sitecustomize hides it): check mode reads
    through the engine's own netlink and predicts the change; a real run fails with
    missing_required_lib's message, nothing made; a run with nothing to do succeeds unchanged (an
    absent object on a host the role has not installed pyroute2 on yet), and so does netns_info."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['pyroute2'] = None  # not installed\n")
    name = prefix + "nolib"
    checked = run_module("netns", {"name": name}, check=True, python_path=str(tmp_path))
    assert checked["changed"] and not checked.get("failed"), checked
    applied = run_module("netns", {"name": name}, python_path=str(tmp_path))
    assert applied["failed"] and "Failed to import the required Python library (pyroute2)" in applied["msg"], applied
    assert name not in netns_list()
    nothing = run_module("netns", {"name": name, "state": "absent"}, python_path=str(tmp_path))
    assert not nothing["changed"] and not nothing.get("failed"), nothing
    # netns_info reads through the same netlink: fleet.yml's check after an absent rollout works there
    left = run_module("netns_info", {"names": [name], "iptables": False}, python_path=str(tmp_path))
    assert not left.get("failed") and left["missing"] == [name], left
