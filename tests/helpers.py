"""Test helpers: run modules as real processes, take kernel snapshots, clean up by prefix.

Only the tests run ``ip -j``/``iptables-save``: to compare whole-machine state before and after,
never to decide anything in the product.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, "build", "collections")
MODULES = os.path.join(REPO, "plugins", "modules")
PYTHON = sys.executable
# The interpreter modules and the restore program run with, as on a managed host: `make test` runs the
# module tests a second time with Debian 12's pyroute2 0.7.2 through this (the controller has 0.9).
MODULE_PYTHON = os.environ.get("LINUXNET_MODULE_PYTHON") or sys.executable


def ensure_collection_path() -> str:
    """build/collections/ansible_collections/linuxnet/netns -> the repository root."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "linuxnet", "netns")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        try:
            os.symlink(REPO, link)
        except FileExistsError:
            pass
    return COLLECTIONS


def run_module(name: str, args: Dict[str, Any], check: bool = False, diff: bool = True,
               python_path: Optional[str] = None) -> Dict[str, Any]:
    """Run plugins/modules/NAME.py as Ansible would (a new process reading its arguments).

    Returns the module's JSON result; ``failed`` is set when the module failed.
    """
    ensure_collection_path()
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=diff)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(payload, handle)
        path = handle.name
    env = dict(os.environ, PYTHONPATH=COLLECTIONS if python_path is None else python_path + ":" + COLLECTIONS)
    try:
        proc = subprocess.run(
            [MODULE_PYTHON, "-m", "ansible_collections.linuxnet.netns.plugins.modules.%s" % name, path],
            capture_output=True, text=True, env=env, check=False,
        )
    finally:
        os.unlink(path)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON (rc=%d)\nstdout:%s\nstderr:%s"
                             % (name, proc.returncode, proc.stdout, proc.stderr)) from None
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in result.get("msg", ""), result
    result["_rc"] = proc.returncode
    return result


def run(argv: List[str], ns: Optional[str] = None, check: bool = True, stdin: Optional[str] = None) -> str:
    if ns is not None:
        argv = ["ip", "netns", "exec", ns] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, input=stdin, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), proc.returncode, proc.stderr))
    return proc.stdout


def netns_list() -> List[str]:
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def _ip_json(args: List[str], ns: Optional[str]) -> Any:
    base = ["ip"] + (["-n", ns] if ns else []) + ["-d", "-j"]
    out = run(base + args, check=False)
    return json.loads(out) if out.strip() else []


def _scrub(value: Any) -> Any:
    """Drop fields that change on their own (counters, lifetimes, timers)."""
    volatile = {"stats", "stats64", "valid_life_time", "preferred_life_time", "expires", "used", "age"}
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in volatile and not k.endswith("_timer")}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


TEST_NAME_PREFIX = "ln"  # every test name starts with it (see conftest.RUN_PREFIX)


def snapshot(prefix: str) -> Dict[str, Any]:
    """Everything observable that a test with ``prefix`` could have changed: the root namespace's
    links, addresses, routes (all tables), policy routing rules and iptables rules, every namespace whose name starts with
    ``prefix`` with the same, the names under /run/netns and the files under /etc/netns.

    Objects of concurrently running test runs (other ``ln*`` names) are left out so that parallel
    runs do not disturb each other's comparisons; everything else on the host is included."""

    def ours(name: str) -> bool:
        return not name.startswith(TEST_NAME_PREFIX) or name.startswith(prefix)

    names = [n for n in netns_list() if ours(n)]
    state: Dict[str, Any] = {"netns": names,
                             "etc_netns": _tree("/etc/netns", ours)}
    for ns in [None] + [n for n in names if n.startswith(prefix)]:
        links = [l for l in _ip_json(["link", "show"], ns) if ours(l.get("ifname", ""))]
        devs = {l.get("ifname") for l in links}
        entry = {
            "links": _scrub(links),
            "addrs": _scrub([a for a in _ip_json(["addr", "show"], ns) if a.get("ifname") in devs]),
            "routes": _scrub([r for r in _ip_json(["route", "show", "table", "all"], ns)
                              if r.get("dev") in devs or "dev" not in r]),
            "routes6": _scrub([r for r in _ip_json(["-6", "route", "show", "table", "all"], ns)
                               if r.get("dev") in devs or "dev" not in r]),
            "rules": _ip_json(["-4", "rule", "show"], ns) + _ip_json(["-6", "rule", "show"], ns),
        }
        for tool in ("iptables-save", "ip6tables-save"):
            out = run([tool], ns=ns, check=False)
            entry[tool] = [line for line in out.splitlines() if not line.startswith("#")]
        entry["nft"] = nft_tables(run(["nft", "-s", "list", "ruleset"], ns=ns, check=False))
        state[ns or "<root>"] = entry
    return state


def nft_tables(listing: str) -> List[List[str]]:
    """nft's listing as its tables (blocks from ``table`` to the closing brace), sorted: a table that was
    replaced is listed after those that were not, with the same content."""
    tables: List[List[str]] = []
    for line in listing.splitlines():
        if line.startswith("table ") or not tables:
            tables.append([])
        tables[-1].append(line)
    return sorted(tables)


def difference(before: Dict[str, Any], after: Dict[str, Any]) -> str:
    """Where two snapshots differ, compactly: per namespace and kind, the entries only before (-)
    and only after (+) (pytest -q would truncate a whole-dict comparison before the difference)."""
    lines = []
    for key in sorted(set(before) | set(after), key=str):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new), key=str):
                if old.get(sub) != new.get(sub):
                    lines.extend(_list_difference("%s/%s" % (key, sub), old.get(sub), new.get(sub)))
        else:
            lines.extend(_list_difference(str(key), old, new))
    return "\n".join(line[:2000] for line in lines)


def _list_difference(where: str, old: Any, new: Any) -> List[str]:
    if not (isinstance(old, list) and isinstance(new, list)):
        return ["%s: %r -> %r" % (where, old, new)]
    old_items = [json.dumps(item, sort_keys=True) for item in old]
    new_items = [json.dumps(item, sort_keys=True) for item in new]
    return (["%s: - %s" % (where, item) for item in old_items if item not in new_items]
            + ["%s: + %s" % (where, item) for item in new_items if item not in old_items]
            or ["%s: same entries, other order" % where])


def _tree(top: str, wanted: Callable[[str], bool] = lambda _name: True) -> Dict[str, str]:
    """The files under ``top`` whose first directory below it ``wanted`` takes, by path: regular
    files' contents, other files' type only (never opened: another run's test may leave a FIFO
    under /etc/netns, which would block this one)."""
    files = {}
    for dirpath, dirs, filenames in os.walk(top):
        if dirpath == top:
            dirs[:] = [name for name in dirs if wanted(name)]
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            try:
                if dirpath == top and not wanted(filename):
                    continue
                mode = os.lstat(path).st_mode
                if not stat.S_ISREG(mode):
                    files[path] = "<not a regular file: %o>" % stat.S_IFMT(mode)
                    continue
                with open(path, "rb") as handle:
                    files[path] = handle.read().decode("utf-8", "replace")
            except FileNotFoundError:  # another run's, removed meanwhile
                continue
    return files


def cleanup(prefix: str) -> None:
    """Remove every namespace and root link whose name starts with ``prefix``: only our own."""
    for ns in netns_list():
        if ns.startswith(prefix):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
            etc = os.path.join("/etc/netns", ns)
            if os.path.isdir(etc):
                subprocess.run(["rm", "-rf", "--", etc], check=False)
    for link in _ip_json(["link", "show"], None):
        name = link.get("ifname", "")
        if name.startswith(prefix):
            subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)


def converge(module: str, args: dict, prefix: str) -> dict:
    """The community.crypto cycle: check reports a change and makes none, apply makes it,
    re-apply and a final check report none. Returns the apply result."""
    wait_settled([None] + [ns for ns in netns_list() if ns.startswith(prefix)], only=prefix)
    before = snapshot(prefix)
    checked = run_module(module, args, check=True)
    assert not checked.get("failed"), checked
    assert checked["changed"] is True
    after = snapshot(prefix)
    assert after == before, "check mode changed the machine: " + difference(before, after)
    applied = run_module(module, args)
    assert not applied.get("failed"), applied
    assert applied["changed"] is True
    assert [c["object"] for c in applied["changes"]] == [c["object"] for c in checked["changes"]]
    again = run_module(module, args)
    assert again["changed"] is False, again["changes"]
    assert run_module(module, args, check=True)["changed"] is False
    return applied


def wait_settled(namespaces: List[Optional[str]], timeout: float = 10.0, only: str = "") -> None:
    """Wait until links brought up by hand have carrier and no IPv6 address is tentative, so that
    the kernel's own asynchronous work (linkwatch, link-local addresses, DAD) does not show up as a
    difference between two snapshots."""
    import time

    deadline = time.monotonic() + timeout
    carrierless_dad_deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        busy = False
        for ns in namespaces:
            mine = [l for l in _ip_json(["addr", "show"], ns) if ns is not None or l.get("ifname", "").startswith(only)]
            for link in mine:
                flags = link.get("flags", [])
                # carrier is there but linkwatch has not yet made the link operationally up
                if "UP" in flags and "LOWER_UP" in flags and link.get("operstate") not in ("UP", "UNKNOWN"):
                    busy = True
                # a veth set up: linkwatch has not yet given it any operational state (UP, or DOWN
                # without its peer); it runs late when the machine is busy, e.g. while the kernel
                # cleans up many namespaces just deleted
                if "UP" in flags and link.get("operstate") == "UNKNOWN" \
                        and link.get("linkinfo", {}).get("info_kind") == "veth":
                    busy = True
                if any("tentative" in a for a in link.get("addr_info", [])):
                    # DAD needs carrier to start, but once started it finishes even after the carrier
                    # is lost (the peer set down): give it DAD's few seconds, then accept it as stable
                    if "LOWER_UP" in flags or time.monotonic() < carrierless_dad_deadline:
                        busy = True
            for link in mine:
                if "LOWER_UP" in link.get("flags", []) and link.get("operstate") == "UP" and link.get("link_type") == "ether" \
                        and not any(a.get("scope") == "link" and a.get("family") == "inet6" for a in link.get("addr_info", [])):
                    busy = True
        if not busy:
            return
        time.sleep(0.05)
    raise AssertionError("links in %s did not settle within %ss" % (namespaces, timeout))


def normalised(prefix: str) -> Dict[str, Any]:
    """The topology-relevant state of the root namespace's ``prefix`` links and of the ``prefix``
    namespaces, without what differs between two identical builds (ifindexes, random MACs,
    IPv6 link-local addresses and their routes, counters): equal before a loss and after a restore."""
    wait_settled([None] + [ns for ns in netns_list() if ns.startswith(prefix)], only=prefix)

    def link_local(text: str) -> bool:
        return text.startswith("fe80:") or text == "fe80::/64" or text.startswith("ff00::")

    state: Dict[str, Any] = {"netns": [ns for ns in netns_list() if ns.startswith(prefix)],
                             "etc_netns": _tree("/etc/netns", lambda name: name.startswith(prefix))}
    for ns in [None] + state["netns"]:
        links = [l for l in _ip_json(["addr", "show"], ns) if ns is not None or l.get("ifname", "").startswith(prefix)]
        names = {l["ifname"] for l in links}
        entry: Dict[str, Any] = {"links": sorted(
            (l["ifname"], (l.get("linkinfo") or {}).get("info_kind"), l["mtu"], "UP" in l.get("flags", []), l.get("master"),
             sorted("%s/%s" % (a["local"], a["prefixlen"]) for a in l.get("addr_info", []) if not link_local(a["local"])))
            for l in links)}
        routes = []
        for family in ("-4", "-6"):
            for r in _ip_json([family, "route", "show", "table", "all"], ns):
                if (ns is None and r.get("dev") not in names) or link_local(r.get("dst", "")):
                    continue
                routes.append((r.get("dst"), r.get("gateway"), r.get("dev"), r.get("table", "main"), r.get("metric"),
                               r.get("protocol"), r.get("type")))
        entry["routes"] = sorted(routes, key=str)
        entry["rules"] = [rule for family in ("-4", "-6") for rule in _ip_json([family, "rule", "show"], ns)]
        if ns is not None:
            entry["sysctl"] = run(["sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"], ns=ns)
            entry["iptables"] = [line for tool in ("iptables-save", "ip6tables-save")
                                 for line in run([tool], ns=ns).splitlines() if line[:1] in ("*", ":", "-")]
        state[ns or "<root>"] = entry
    return state


def restore_program(*args: str, open_files: Optional[Tuple[int, int]] = None, python_path: Optional[str] = None,
                    extra_env: Optional[Dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    """Run the restore program (linuxnet-netns) from this checkout with the module Python;
    ``open_files``: its (soft, hard) RLIMIT_NOFILE; ``python_path``: searched before the checkout;
    ``extra_env``: set in its environment."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS if python_path is None else python_path + os.pathsep + COLLECTIONS)
    env.update(extra_env or {})
    limit = None if open_files is None else (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, open_files))
    return subprocess.run([MODULE_PYTHON, "-c", "from ansible_collections.linuxnet.netns.plugins.module_utils._engine.cli "
                           "import main; import sys; sys.exit(main())"] + list(args), capture_output=True, text=True, env=env, check=False,
                          preexec_fn=limit)


def leftovers(prefix: str) -> List[str]:
    """Namespaces, root-namespace links and /etc/netns entries whose names start with ``prefix``."""
    links = [l["ifname"] for l in _ip_json(["link", "show"], None) if l["ifname"].startswith(prefix)]
    files = [f for f in os.listdir("/etc/netns") if f.startswith(prefix)] if os.path.isdir("/etc/netns") else []
    return [n for n in netns_list() if n.startswith(prefix)] + links + files


def save_spec(tmp_path: Any, spec: Dict[str, Any], name: str = "topo.json") -> Tuple[str, str]:
    """Write ``spec`` as the restore program reads it; returns (its path, a state directory)."""
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as handle:
        json.dump(spec, handle)
    return path, os.path.join(str(tmp_path), "state")
