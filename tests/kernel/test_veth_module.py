"""The veth module against the real kernel."""

from __future__ import annotations

import json

import pytest

from helpers import converge, netns_list, run, run_module, snapshot


def link(name: str, ns: str = None) -> dict:
    out = run(["ip"] + (["-n", ns] if ns else []) + ["-d", "-j", "link", "show", name])
    return json.loads(out)[0]


def test_root_to_namespace_pair(prefix: str) -> None:
    ns = prefix + "n"
    run(["ip", "netns", "add", ns])
    args = {"name": prefix + "v0", "peer": "veth1", "peer_netns": ns, "mtu": 1400, "peer_mtu": 1300,
            "mac": "02:00:00:00:00:01", "peer_mac": "02:00:00:00:00:02"}
    applied = converge("veth", args, prefix)
    # the first end comes up with the create; the kernel takes no flags for the peer in that request
    assert [(c["action"], c["object"]) for c in applied["changes"]] == [
        ("create", prefix + "v0 in root namespace"), ("update", "veth1 in netns " + ns)]
    assert applied["changes"][0]["after"]["state"] == "up" and applied["changes"][1]["after"] == {"state": "up"}
    root_end, inner = link(prefix + "v0"), link("veth1", ns)
    assert root_end["mtu"] == 1400 and inner["mtu"] == 1300
    assert root_end["address"] == "02:00:00:00:00:01" and inner["address"] == "02:00:00:00:00:02"
    assert "UP" in root_end["flags"] and "UP" in inner["flags"]
    assert applied["end"]["ifindex"] == root_end["ifindex"] and applied["peer"]["netns"] == ns
    # change attributes: only those change, with a diff
    args.update(mtu=1500, peer_up=False)
    changed = run_module("veth", args)
    assert changed["diff"]["before"] == {"link %s in root namespace" % (prefix + "v0"): {"mtu": 1400},
                                         "link veth1 in netns %s" % ns: {"state": "up"}}
    assert run_module("veth", args)["changed"] is False
    converge("veth", dict(args, state="absent"), prefix)
    assert prefix + "v0" not in run(["ip", "-j", "link"])


def test_pair_between_two_namespaces_passes_traffic(prefix: str) -> None:
    red, blue = prefix + "r", prefix + "b"
    for ns in (red, blue):
        run(["ip", "netns", "add", ns])
    converge("veth", {"name": "rb", "netns": red, "peer": "br", "peer_netns": blue}, prefix)
    run(["ip", "-n", red, "addr", "add", "10.232.0.1/30", "dev", "rb"])
    run(["ip", "-n", blue, "addr", "add", "10.232.0.2/30", "dev", "br"])
    run(["ping", "-c", "1", "-W", "2", "10.232.0.2"], ns=red)


def test_both_ends_in_root(prefix: str) -> None:
    converge("veth", {"name": prefix + "x", "peer": prefix + "y", "up": False, "peer_up": False}, prefix)
    assert link(prefix + "x")["link"] == prefix + "y"


def test_moved_end_is_moved_back(prefix: str) -> None:
    """A pair whose end was moved elsewhere converges by moving it back, not by a new pair."""
    home, stray = prefix + "h", prefix + "s"
    for ns in (home, stray):
        run(["ip", "netns", "add", ns])
    args = {"name": prefix + "m0", "peer": "m1", "peer_netns": home}
    run_module("veth", args)
    index = link(prefix + "m0")["ifindex"]
    run(["ip", "-n", home, "link", "set", "m1", "netns", stray])
    moved = run_module("veth", args)
    assert moved["changed"] and moved["changes"][0]["action"] == "move"
    assert moved["changes"][0]["before"] == {"netns": stray}
    assert link(prefix + "m0")["ifindex"] == index  # the same pair
    assert "UP" in link("m1", home)["flags"]
    assert run_module("veth", args)["changed"] is False
    # the root end moved away: found through its peer and brought back
    run(["ip", "link", "set", prefix + "m0", "netns", stray])
    assert run_module("veth", args)["changes"][0]["object"] == "%sm0 in root namespace" % prefix
    assert run_module("veth", args)["changed"] is False


def test_foreign_same_named_link_is_refused(prefix: str) -> None:
    ns = prefix + "f"
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", prefix + "d", "type", "bridge"])
    run(["ip", "-n", ns, "link", "add", "other", "type", "veth", "peer", "name", "v1"])
    before = snapshot(prefix)
    refused = run_module("veth", {"name": prefix + "d", "peer": "v1", "peer_netns": ns})
    assert refused["failed"] and "not the two ends of one veth pair" in refused["msg"]
    refused = run_module("veth", {"name": prefix + "q", "peer": "v1", "peer_netns": ns})
    assert refused["failed"] and "paired with veth link other" in refused["msg"]
    refused = run_module("veth", {"name": prefix + "d", "peer": "zz", "state": "absent"})
    assert refused["failed"] and "refusing to delete" in refused["msg"]
    assert snapshot(prefix) == before


def test_recreate_right_after_namespace_delete(prefix: str) -> None:
    """EEXIST after netns delete: the netns module waits until the kernel removed the ends."""
    ns = prefix + "e"
    for _round in range(3):
        assert run_module("netns", {"name": ns})["changed"]
        assert run_module("veth", {"name": prefix + "e0", "peer": "e1", "peer_netns": ns})["changed"]
        assert run_module("netns", {"name": ns, "state": "absent"})["changed"]
        result = run_module("veth", {"name": prefix + "e0", "peer": prefix + "e1"})
        assert result["changed"] and not result.get("failed"), result
        run(["ip", "link", "del", prefix + "e0"])


def test_check_mode_creates_nothing_and_assumes_missing_namespace(prefix: str) -> None:
    ns = prefix + "c"
    before = snapshot(prefix)
    result = run_module("veth", {"name": prefix + "c0", "peer": "c1", "peer_netns": ns}, check=True)
    assert result["changed"] and ns not in netns_list()
    assert any("namespace %s does not exist yet" % ns in w for w in result.get("warnings", []))
    assert snapshot(prefix) == before


def test_absent_with_namespace_gone_is_a_no_op(prefix: str) -> None:
    assert run_module("veth", {"name": prefix + "g0", "peer": "g1", "peer_netns": prefix + "gone",
                               "state": "absent"})["changed"] is False


BAD = [
    ({"name": "x" * 16, "peer": "p"}, "at most 15"),
    ({"name": "a/b", "peer": "p"}, "invalid interface name"),
    ({"name": "", "peer": "p"}, "non-empty"),
    ({"name": "ok0", "peer": "ok0"}, "both ends"),
    ({"name": "ok0", "peer": "p", "mac": "zz:00:00:00:00:00"}, "not a MAC"),
    ({"name": "ok0", "peer": "p", "mac": "02:00:00:00:00:01\n"}, "not a MAC"),
    ({"name": "ok0\n", "peer": "p"}, "invalid interface name"),
    ({"name": "ok0", "peer": "p", "peer_mac": "01:00:00:00:00:01"}, "multicast"),
    ({"name": "ok0", "peer": "p", "mac": "00:00:00:00:00:00"}, "all-zero"),
    ({"name": "ok0", "peer": "p", "peer_mac": "ff:ff:ff:ff:ff:ff"}, "broadcast"),
    ({"name": "lo", "peer": "p"}, "loopback"),
    ({"name": "ok0", "peer": "lo", "peer_netns": "NEW"}, "loopback"),
    ({"name": "ok0", "peer": "all"}, "settings of all links"),
    ({"name": "ok0", "peer": "p", "mtu": 20}, "out of range"),
    ({"name": "ok0", "peer": "p", "peer_netns": "../x"}, "not allowed"),
    ({"name": "ok0", "peer": "p", "netns": "NOPE"}, "does not exist"),
    ({"name": "ok0", "peer": "p", "state": "maybe"}, "value of state must be one of"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input(prefix: str, args: dict, message: str) -> None:
    args = {k: (prefix + v if k in ("name", "peer") and v.rstrip("\n") in ("ok0", "p") else v) for k, v in args.items()}
    if args.get("netns") == "NOPE":
        args["netns"] = prefix + "nope"
    if args.get("peer_netns") == "NEW":
        args["peer_netns"] = prefix + "new"
        run(["ip", "netns", "add", args["peer_netns"]])
    before = snapshot(prefix)
    result = run_module("veth", args)
    assert result["failed"] and message in result["msg"], result
    assert snapshot(prefix) == before


def test_a_name_every_new_namespace_has_is_refused_when_planned(prefix: str) -> None:
    """A link name that a namespace has from its creation (lo; a tunnel module's fallback device)
    is refused while planning a veth into a namespace the same plan creates."""
    from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
    from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel.session import Kernel
    from ansible_collections.linuxnet.netns.plugins.module_utils._engine.model import Pending
    from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.veth import VethEnd, VethSpec, plan_veth

    new = prefix + "new"
    spec = VethSpec(VethEnd(None, prefix + "n0"), VethEnd(new, "lo"), field="links[0]")
    before = snapshot(prefix)
    with Kernel() as kernel, pytest.raises(NetnsError) as caught:
        plan_veth(kernel, spec, Pending(namespaces={new}))
    assert caught.value.obj == "links[0].peer" and "every new namespace has a link lo" in caught.value.message
    assert snapshot(prefix) == before
