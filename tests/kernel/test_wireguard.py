"""WireGuard links on the real kernel: made by wireguard-go (this kernel has no wireguard module) in an
underlay namespace, moved and renamed into the tunnel's namespace; two namespaces talk through the
tunnel; keys never in results; teardown leaves no link, process or socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from typing import Any, Dict, List, Tuple

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel import wireguard as wg
from helpers import converge, leftovers, restore_program, run, run_module, save_spec, snapshot

PORT_A, PORT_B = 51820, 51821


def _keypair(directory: str, name: str) -> Tuple[str, str, str]:
    """(key file, private key, public key) from `wg genkey` / `wg pubkey`, the file 0600."""
    private = run(["wg", "genkey"]).strip()
    public = run(["wg", "pubkey"], stdin=private + "\n").strip()
    path = os.path.join(directory, name + ".key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private + "\n")
    return path, private, public


@pytest.fixture()
def keys(tmp_path: Any) -> Dict[str, Tuple[str, str, str]]:
    directory = str(tmp_path / "keys")
    os.mkdir(directory, 0o700)
    return {side: _keypair(directory, side) for side in ("a", "b")}


def _spec(prefix: str, keys: Dict[str, Tuple[str, str, str]], b_allows: List[str] = ("10.234.9.1/32",)) -> Dict[str, Any]:
    """A and B joined by a veth (the underlay); VA (underlay A) and VB (underlay B) each with wg0."""
    a, b, va, vb = prefix + "a", prefix + "b", prefix + "va", prefix + "vb"
    return {
        "name": prefix + "wg",
        "namespaces": [
            {"name": a, "addresses": [{"dev": "ab", "address": "10.234.0.1/24"}]},
            {"name": b, "addresses": [{"dev": "ba", "address": "10.234.0.2/24"}]},
            {"name": va, "addresses": [{"dev": "wg0", "address": "10.234.9.1/24"}]},
            {"name": vb, "addresses": [{"dev": "wg0", "address": "10.234.9.2/24"}]},
        ],
        "links": [
            {"type": "veth", "name": "ab", "netns": a, "peer": "ba", "peer_netns": b},
            {"type": "wireguard", "name": "wg0", "netns": va, "underlay_netns": a, "private_key_file": keys["a"][0],
             "listen_port": PORT_A,
             "peers": [{"public_key": keys["b"][2], "endpoint": "10.234.0.2:%d" % PORT_B,
                        "allowed_ips": ["10.234.9.2/32"], "persistent_keepalive": 25}]},
            {"type": "wireguard", "name": "wg0", "netns": vb, "underlay_netns": b, "private_key_file": keys["b"][0],
             "listen_port": PORT_B,
             "peers": [{"public_key": keys["a"][2], "endpoint": "10.234.0.1:%d" % PORT_A, "allowed_ips": list(b_allows)}]},
        ],
    }


def _pings(ns: str, address: str, tries: int = 12) -> bool:
    """A reply within ``tries`` seconds: a handshake that met an unconfigured peer is retried after 5 s."""
    for _try in range(tries):
        proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", address],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return True
    return False


def _daemons(prefix: str) -> List[int]:
    """wireguard-go processes serving this test's links."""
    handles = {wg.uapi_name(prefix + ns, "wg0") for ns in ("va", "vb")}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"wireguard-go" and any(a.decode() in handles for a in argv[1:]):
            found.append(int(pid))
    return found


def _sockets(prefix: str) -> List[str]:
    return [path for path in (wg.uapi_socket(prefix + ns, "wg0") for ns in ("va", "vb")) if os.path.exists(path)]


def _assert_no_secret(result: Dict[str, Any], keys: Dict[str, Tuple[str, str, str]]) -> None:
    text = json.dumps(result)
    for _path, private, _public in keys.values():
        assert private not in text and wg.decode_key(private).hex() not in text  # type: ignore[union-attr]


def _assert_gone(prefix: str) -> None:
    assert leftovers(prefix) == []
    _wait_for(lambda: not _daemons(prefix) and not _sockets(prefix))


@pytest.fixture(autouse=True)
def userspace(monkeypatch: pytest.MonkeyPatch) -> None:
    if wg.wireguard_go() is None:
        pytest.skip("wireguard-go is not installed (make deps installs it)")
    monkeypatch.setenv(wg.BACKEND_ENV, "userspace")


def test_tunnel_cycle_allowed_ips_and_teardown(prefix: str, tmp_path: Any, keys: Dict[str, Tuple[str, str, str]]) -> None:
    """check -> apply -> again unchanged -> check unchanged; a ping through the tunnel; one peer's
    allowed_ips changed changes only that; teardown leaves no link, process or socket."""
    args = {"topology": _spec(prefix, keys), "state_dir": str(tmp_path / "state")}
    applied = converge("topology", args, prefix)
    _assert_no_secret(applied, keys)
    wg_changes = [(c["action"], c["object"]) for c in applied["changes"] if c["object"].startswith("wg0 ")]
    for ns in ("va", "vb"):
        where = "wg0 in netns %s%s" % (prefix, ns)
        assert [action for action, obj in wg_changes if obj == where] == ["create", "update", "update"], wg_changes
    assert run(["ip", "-br", "link", "show", "wg0"], ns=prefix + "va").split()[0] == "wg0"
    assert len(_daemons(prefix)) == 2
    assert "51820" in run(["ss", "-uanH"], ns=prefix + "a")  # the UDP socket stays in the underlay
    assert _pings(prefix + "va", "10.234.9.2")
    assert _pings(prefix + "vb", "10.234.9.1")

    args["topology"] = _spec(prefix, keys, b_allows=["10.234.9.1/32", "10.234.10.0/24"])
    changed = run_module("topology", args, check=True)
    assert [(c["action"], c["object"]) for c in changed["changes"]] == [("update", "wg0 in netns %svb" % prefix)]
    after = changed["changes"][0]["after"]
    assert after == {"peers": {keys["a"][2]: {"endpoint": "10.234.0.1:%d" % PORT_A, "persistent_keepalive": 0,
                                              "allowed_ips": ["10.234.10.0/24", "10.234.9.1/32"]}}}, after
    applied = run_module("topology", args)
    assert applied["changed"] is True and not applied.get("failed"), applied
    _assert_no_secret(applied, keys)
    assert run_module("topology", args)["changed"] is False
    # wg(8) finds a wireguard-go device by its socket's name, not the TUN's name
    assert "10.234.10.0/24" in run(["wg", "show", wg.uapi_name(prefix + "vb", "wg0"), "allowed-ips"])
    assert _pings(prefix + "va", "10.234.9.2")

    removed = run_module("topology", dict(args, state="absent"))
    assert removed["changed"] is True and not removed.get("failed"), removed
    _assert_gone(prefix)


def test_drift_is_put_back(prefix: str, tmp_path: Any, keys: Dict[str, Tuple[str, str, str]]) -> None:
    """A peer added by hand goes, a port changed by hand comes back; the key stays unshown."""
    args = {"topology": _spec(prefix, keys), "state_dir": str(tmp_path / "state")}
    assert not run_module("topology", args).get("failed")
    stranger = run(["wg", "pubkey"], stdin=run(["wg", "genkey"])).strip()
    _set_by_uapi(prefix + "va", "set=1\nlisten_port=51999\npublic_key=%s\nallowed_ip=10.99.0.0/24\n\n"
                 % wg.decode_key(stranger).hex())  # type: ignore[union-attr]
    drift = run_module("topology", args, check=True)
    assert [(c["action"], c["object"]) for c in drift["changes"]] == [("update", "wg0 in netns %sva" % prefix)]
    change = drift["changes"][0]
    assert change["before"]["listen_port"] == 51999 and change["after"]["listen_port"] == PORT_A
    assert change["after"]["peers"] == {stranger: None}
    assert run_module("topology", args)["changed"] is True
    assert run_module("topology", args, check=True)["changed"] is False
    assert run_module("topology", dict(args, state="absent"))["changed"] is True
    _assert_gone(prefix)


def _set_by_uapi(ns: str, request: str) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(wg.uapi_socket(ns, "wg0"))
    sock.sendall(request.encode())
    assert b"errno=0" in sock.recv(4096)
    sock.close()


def test_purge_and_teardown_take_only_ours(prefix: str, tmp_path: Any, keys: Dict[str, Tuple[str, str, str]]) -> None:
    """VA exists before (it stays) and holds a foreign TUN; purge deletes the wg0 the spec dropped (its
    daemon ends), teardown deletes ours in VA and leaves the TUN and VA alone."""
    va = prefix + "va"
    run(["ip", "netns", "add", va])
    run(["ip", "tuntap", "add", "mode", "tun", "name", "keep0"], ns=va)
    spec = _spec(prefix, keys)
    args = {"topology": spec, "state_dir": str(tmp_path / "state")}
    assert not run_module("topology", args).get("failed")
    assert len(_daemons(prefix)) == 2
    dropped = _spec(prefix, keys)
    del dropped["links"][2]
    dropped["namespaces"][3]["addresses"] = []
    purged = run_module("topology", dict(args, topology=dropped, purge=True))
    assert not purged.get("failed"), purged
    assert [(c["kind"], c["action"], c["object"]) for c in purged["changes"]] == [
        ("address", "delete", "10.234.9.2/24 on wg0 in netns %svb" % prefix), ("link", "delete", "wg0 in netns %svb" % prefix)]
    assert "wg0" not in run(["ip", "-br", "link"], ns=prefix + "vb")
    _wait_for(lambda: len(_daemons(prefix)) == 1)
    removed = run_module("topology", dict(args, topology=dropped, state="absent"))
    assert not removed.get("failed"), removed
    assert [line.split()[0] for line in run(["ip", "-br", "link"], ns=va).splitlines()] == ["lo", "keep0"]
    _wait_for(lambda: not _daemons(prefix) and not _sockets(prefix))
    run(["ip", "netns", "delete", va])
    _assert_gone(prefix)


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    """wireguard-go ends a moment after its TUN is deleted."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within %s s" % timeout
        time.sleep(0.05)


def test_group_readable_key_file_is_refused(prefix: str, tmp_path: Any, keys: Dict[str, Tuple[str, str, str]]) -> None:
    os.chmod(keys["b"][0], 0o640)
    before = snapshot(prefix)
    result = run_module("topology", {"topology": _spec(prefix, keys), "state_dir": str(tmp_path / "state")})
    assert result["failed"], result
    assert "links[2].private_key_file" in result["msg"] and keys["b"][0] in result["msg"], result["msg"]
    assert "readable by group" in result["msg"], result["msg"]
    _assert_no_secret(result, keys)
    assert snapshot(prefix) == before
    assert _daemons(prefix) == []


def test_restore_program_info_and_graph(prefix: str, tmp_path: Any, keys: Dict[str, Tuple[str, str, str]]) -> None:
    """The boot restore makes the tunnel again after its namespaces vanished; netns_info and the graph
    show it without keys."""
    path, state_dir = save_spec(tmp_path, _spec(prefix, keys))
    env = {wg.BACKEND_ENV: "userspace"}
    made = restore_program("apply", path, "--state-dir", state_dir, extra_env=env)
    assert made.returncode == 0, made.stderr
    run(["ip", "netns", "delete", prefix + "va"])  # its daemon ends, holding the underlay's port a moment longer
    remade = restore_program("apply", path, "--state-dir", state_dir, extra_env=env)
    assert remade.returncode == 0, remade.stderr
    assert _pings(prefix + "va", "10.234.9.2")
    for ns in ("a", "b", "va", "vb"):
        run(["ip", "netns", "delete", prefix + ns])
    restored = restore_program("apply", path, "--state-dir", state_dir, extra_env=env)
    assert restored.returncode == 0, restored.stderr
    assert _pings(prefix + "va", "10.234.9.2")
    again = restore_program("check", path, "--state-dir", state_dir, extra_env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    for _path, private, _public in keys.values():
        assert private not in made.stdout + made.stderr + restored.stdout + restored.stderr
    info = run_module("netns_info", {"names": [prefix + "va"]})
    _assert_no_secret(info, keys)
    wg0 = [link for link in info["namespaces"][0]["links"] if link["name"] == "wg0"]
    assert wg0 and wg0[0]["type"] == "wireguard" and wg0[0]["wireguard"]["backend"] == "userspace", wg0
    assert wg0[0]["wireguard"]["peers"][0]["allowed_ips"] == ["10.234.9.2/32"], wg0
    graph = restore_program("graph", path)
    assert graph.returncode == 0 and "wireguard" in graph.stdout, graph.stdout + graph.stderr
    assert restore_program("teardown", path, "--state-dir", state_dir).returncode == 0
    _assert_gone(prefix)


def test_kernel_backend(prefix: str, tmp_path: Any, keys: Dict[str, Tuple[str, str, str]],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(wg.BACKEND_ENV)
    if not wg.kernel_has_wireguard():
        pytest.skip("this kernel has no wireguard module: the kernel backend is unit-tested only")
    monkeypatch.setenv(wg.BACKEND_ENV, "kernel")
    args = {"topology": _spec(prefix, keys), "state_dir": str(tmp_path / "state")}
    converge("topology", args, prefix)
    assert _pings(prefix + "va", "10.234.9.2")
    assert run_module("topology", dict(args, state="absent"))["changed"] is True
    assert leftovers(prefix) == []
