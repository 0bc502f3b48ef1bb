"""nftables tables per namespace on the real kernel: through libnftables in the module's process and
through the ``nft -f`` fallback (LINUXNET_NETNS_NFT=program), with pings that pass or not as the
table declares, a foreign table that stays, and teardown that leaves nothing."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
from typing import Any, Dict, List

import pytest
import yaml

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.apply import execute
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel import nftables as nft
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel.session import Kernel
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.nftables import (
    canonical, canonicalise, read_nftables, restore_json)
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.rollback import Journal
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.topology import plan_topology
from helpers import converge, difference, restore_program, run, run_module, save_spec, snapshot, wait_settled

INPUT = """chain input {
    type filter hook input priority 0; policy drop;
    ip saddr %s icmp type echo-request accept
    ct state established,related accept
}"""


def _spec(prefix: str, allowed: str = "10.233.1.2") -> Dict[str, Any]:
    """A firewall namespace F with a drop-policy input chain that takes pings from B only; C is refused."""
    f, b, c = prefix + "f", prefix + "b", prefix + "c"
    return {
        "name": prefix + "nft",
        "namespaces": [
            {"name": f, "addresses": [{"dev": "fb", "address": "10.233.1.1/24"},
                                      {"dev": "fc", "address": "10.233.2.1/24"}],
             "nftables": [{"family": "inet", "table": "filter", "definition": INPUT % allowed}]},
            {"name": b, "addresses": [{"dev": "bf", "address": "10.233.1.2/24"}]},
            {"name": c, "addresses": [{"dev": "cf", "address": "10.233.2.2/24"}]},
        ],
        "links": [
            {"type": "veth", "name": "fb", "netns": f, "peer": "bf", "peer_netns": b},
            {"type": "veth", "name": "fc", "netns": f, "peer": "cf", "peer_netns": c},
        ],
    }


def _pings(ns: str, address: str) -> bool:
    proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", address],
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0


def _tables(ns: str) -> List[str]:
    listing = json.loads(run(["nft", "-j", "list", "tables"], ns=ns))["nftables"]
    return sorted("%s %s" % (item["table"]["family"], item["table"]["name"]) for item in listing if "table" in item)


@pytest.fixture(params=["libnftables", "nft -f"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the engine talks to nftables; the fallback as on a host without python3-nftables."""
    if request.param == "nft -f":
        monkeypatch.setenv("LINUXNET_NETNS_NFT", "program")
    else:
        monkeypatch.delenv("LINUXNET_NETNS_NFT", raising=False)
        probe = subprocess.run([os.environ.get("LINUXNET_MODULE_PYTHON") or "python", "-c", "import nftables"],
                               check=False, capture_output=True)
        if probe.returncode != 0:
            pytest.fail("python3-nftables is not importable by the module Python (make venv links it)")
    return request.param


def test_cycle_pings_foreign_table_and_teardown(prefix: str, tmp_path: Any, backend: str) -> None:
    """A namespace that exists before (so it stays), holding a foreign table: check -> apply -> again
    unchanged -> check; pings as declared; the foreign table untouched; teardown removes only ours."""
    f = prefix + "f"
    before = snapshot(prefix)
    run(["ip", "netns", "add", f])
    run(["nft", "add table ip foreign; add chain ip foreign keep { type filter hook output priority 0; }"], ns=f)
    foreign = run(["nft", "-s", "list", "table", "ip", "foreign"], ns=f)
    args = {"topology": _spec(prefix), "state_dir": str(tmp_path / "state")}
    applied = converge("topology", args, prefix)
    nft_changes = [c for c in applied["changes"] if c["kind"] == "nftables"]
    assert [(c["action"], c["object"]) for c in nft_changes] == [("create", "tables in netns %s" % f)]
    assert nft_changes[0]["after"]["applied_with"] == backend
    assert _pings(prefix + "b", "10.233.1.1")
    assert not _pings(prefix + "c", "10.233.2.1")
    assert _tables(f) == ["inet filter", "ip foreign"]
    assert run(["nft", "-s", "list", "table", "ip", "foreign"], ns=f) == foreign
    removed = run_module("topology", dict(args, state="absent"))
    assert not removed.get("failed"), removed
    assert _tables(f) == ["ip foreign"]
    assert run(["nft", "-s", "list", "table", "ip", "foreign"], ns=f) == foreign
    run(["ip", "netns", "delete", f])
    assert snapshot(prefix) == before


def test_drift_and_new_definition_are_replaced_whole(prefix: str, tmp_path: Any, backend: str) -> None:
    """A rule added by hand is drift (the table is the topology's whole); a changed definition
    updates the table in one transaction, and pings follow it."""
    f = prefix + "f"
    args = {"topology": _spec(prefix), "state_dir": str(tmp_path / "state")}
    converge("topology", args, prefix)
    run(["nft", "add rule inet filter input tcp dport 80 accept"], ns=f)
    drift = run_module("topology", args, check=True)
    assert [(c["kind"], c["action"]) for c in drift["changes"]] == [("nftables", "update")]
    assert run_module("topology", args)["changed"] is True
    assert "dport 80" not in run(["nft", "list", "table", "inet", "filter"], ns=f)
    args["topology"] = _spec(prefix, allowed="10.233.2.2")
    changed = converge("topology", args, prefix)
    assert [c["action"] for c in changed["changes"]] == ["update"]
    assert _pings(prefix + "c", "10.233.2.1")
    assert not _pings(prefix + "b", "10.233.1.1")
    assert run_module("topology", dict(args, state="absent"))["changed"] is True
    assert not os.path.exists("/run/netns/" + f)


def test_purge_removes_a_table_no_longer_declared(prefix: str, tmp_path: Any) -> None:
    f = prefix + "f"
    spec = _spec(prefix)
    spec["namespaces"][0]["nftables"].append({"family": "ip", "table": "extra", "definition": "set blocked { type ipv4_addr; }"})
    args = {"topology": spec, "state_dir": str(tmp_path / "state")}
    converge("topology", args, prefix)
    assert _tables(f) == ["inet filter", "ip extra"]
    spec = _spec(prefix)
    kept = run_module("topology", {"topology": spec, "state_dir": args["state_dir"]})
    assert kept["changed"] is False and _tables(f) == ["inet filter", "ip extra"]  # retired, kept until a purge
    purged = run_module("topology", {"topology": spec, "state_dir": args["state_dir"], "purge": True})
    assert [(c["kind"], c["action"]) for c in purged["changes"]] == [("nftables", "delete")]
    assert _tables(f) == ["inet filter"]
    assert run_module("topology", {"topology": spec, "state_dir": args["state_dir"], "state": "absent"})["changed"]


def test_refused_definition_changes_nothing(prefix: str, tmp_path: Any) -> None:
    spec = _spec(prefix)
    spec["namespaces"][0]["nftables"][0]["definition"] = "chain input { type filter hook input priority 0; nonsense; }"
    before = snapshot(prefix)
    result = run_module("topology", {"topology": spec, "state_dir": str(tmp_path / "state")})
    assert result["failed"] and "namespaces[0].nftables[0].definition" in result["msg"], result
    assert snapshot(prefix) == before


def test_restore_program_and_netns_info(prefix: str, tmp_path: Any) -> None:
    """The boot restore brings the table back after its namespaces vanished (a reboot, by hand);
    netns_info lists it, graph labels it."""
    f = prefix + "f"
    path, state_dir = save_spec(tmp_path, _spec(prefix))
    assert restore_program("apply", path, "--state-dir", state_dir).returncode == 0
    for ns in ("f", "b", "c"):
        run(["ip", "netns", "delete", prefix + ns])
    restored = restore_program("apply", path, "--state-dir", state_dir)
    assert restored.returncode == 0, restored.stderr
    assert _tables(f) == ["inet filter"] and _pings(prefix + "b", "10.233.1.1")
    again = restore_program("check", path, "--state-dir", state_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    info = run_module("netns_info", {"names": [f], "nftables": "ruleset"})
    tables = info["namespaces"][0]["nftables"]
    assert [(t["family"], t["table"]) for t in tables] == [("inet", "filter")]
    assert any("chain" in item for item in tables[0]["ruleset"])
    graph = restore_program("graph", path)
    assert graph.returncode == 0 and "nftables inet filter" in graph.stdout, graph.stdout + graph.stderr
    assert restore_program("teardown", path, "--state-dir", state_dir).returncode == 0


@pytest.mark.parametrize("backend_class", ["BindingBackend", "ProgramBackend"])
def test_undo_restores_the_listing(prefix: str, backend_class: str) -> None:
    """Rollback's undo: the JSON buffer made from a table's listing brings back that table exactly,
    through the binding and through nft -j -f, in the namespace entered."""
    f = prefix + "f"
    run(["ip", "netns", "add", f])
    backend = (nft.BindingBackend(importlib.import_module("nftables")) if backend_class == "BindingBackend"
               else nft.ProgramBackend())
    with Kernel() as kernel:
        with kernel.entered(f):
            table = "table inet t {\n%s\nset s { type ipv4_addr; elements = { 192.0.2.1 } }\n}\n" % (INPUT % "10.233.1.2")
            assert backend.run(table)[0] == 0
        old = read_nftables(kernel, f)
        with kernel.entered(f):
            changed = "add table inet t\ndelete table inet t\ntable inet t {\nchain other {\n}\n}\ntable ip gone {\n}\n"
            assert backend.run(changed)[0] == 0
            rc, _out, err = backend.run(restore_json({("inet", "t"): old[("inet", "t")], ("ip", "gone"): None}),
                                        json_output=True)
        assert rc == 0, err
        kernel.cache.invalidate(f, "nftables")
        assert read_nftables(kernel, f) == old
    assert run(["nft", "list", "tables"], ns=f).split() == ["table", "inet", "t"]


def test_the_documented_example_loads_into_nft() -> None:
    """docs/topology-format.md's nftables example: nft takes both tables (in a throw-away namespace only)."""
    with open(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "docs", "topology-format.md")) as handle:
        section = handle.read().split("\n## nftables\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    topology = parse_topology(yaml.safe_load(block.group(1)))
    tables = [t for scope in topology.scope_specs if scope.nftables for t in scope.nftables.tables]
    canonicalise(tables)
    assert all(any("chain" in item for item in canonical(t)) for t in tables)


def test_restore_program_without_any_nftables_restores_the_rest(prefix: str, tmp_path: Any) -> None:
    """A boot on a host with neither python3-nftables nor nft: everything else is restored, the
    program exits 2 naming the tables it skipped."""
    path, state_dir = save_spec(tmp_path, _spec(prefix))
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"):
        found = subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True, text=True, check=False).stdout.strip()
        if found:
            os.symlink(found, str(bare / tool))
    env = {"LINUXNET_NETNS_NFT": "program", "PATH": str(bare)}
    result = restore_program("apply", path, "--state-dir", state_dir, extra_env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "skipped the nftables tables: inet filter in netns %sf" % prefix in result.stderr
    assert _pings(prefix + "c", "10.233.2.1")  # no table: nothing dropped
    assert restore_program("teardown", path, "--state-dir", state_dir).returncode == 0


def test_journal_reverses_nftables_changes(prefix: str, tmp_path: Any, backend: str) -> None:
    """Rollback of a run that changed one namespace's table and created another's: each namespace's
    tables come back as they were, in one transaction each, and the foreign table stays."""
    args = {"topology": _spec(prefix), "state_dir": str(tmp_path / "state")}
    assert not run_module("topology", args).get("failed")
    run(["nft", "add table ip foreign"], ns=prefix + "f")
    wait_settled([None] + [prefix + n for n in "fbc"], only=prefix)
    before = snapshot(prefix)
    second = _spec(prefix, allowed="10.233.2.2")
    second["namespaces"][1]["nftables"] = [{"family": "ip", "table": "t", "definition": "set s { type ipv4_addr; }"}]
    journal = Journal()
    with Kernel() as kernel:
        changes = [c for c in plan_topology(kernel, parse_topology(second)) if c.kind == "nftables"]
        assert sorted(c.action for c in changes) == ["create", "update"]
        execute(kernel, changes, check_mode=False, journal=journal)
        kernel.cache.invalidate()
        assert not plan_topology(kernel, parse_topology(second))
        undone, problems = journal.roll_back(kernel)
    assert problems == [] and len(undone) == 2
    after = snapshot(prefix)
    assert after == before, difference(before, after)
    assert run_module("topology", dict(args, state="absent"))["changed"] is True
