"""Table-driven tests of the wireguard kind's pure parts: the format's refusals (path-named), the key
file's checks, the plan of a device's settings (one plan for both backends), the UAPI request and the
kernel backend's peer structure, and that no key is ever in a change."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel import wireguard as wg
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kernel.cache import ReadCache
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.link import Link
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.wireguard import (
    WireguardSettings,
    backend_of,
    parse_endpoint,
    plan_settings,
    plan_wireguard,
    read_private_key,
    wireguard_spec,
)
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.model import Pending
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.report.graph import to_dot
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.spec import parse_topology

PRIVATE = bytes(range(32))
OTHER = bytes(range(1, 33))
PEER = base64.b64encode(bytes([7] * 32)).decode()
PEER2 = base64.b64encode(bytes([9] * 32)).decode()


@pytest.fixture()
def key_file(tmp_path: Any) -> str:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    path = str(directory / "wg.key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, base64.b64encode(PRIVATE) + b"\n")
    os.close(fd)
    return path


def _topology(key_file: str = "/etc/wireguard/vpn.key", **link: Any) -> Dict[str, Any]:
    item = {"type": "wireguard", "name": "wg0", "netns": "vpn", "private_key_file": key_file, "listen_port": 51820,
            "peers": [{"public_key": PEER, "endpoint": "192.0.2.1:51820", "allowed_ips": ["0.0.0.0/0", "::/0"],
                       "persistent_keepalive": 25}]}
    item.update(link)
    return {"name": "t", "namespaces": [{"name": "vpn", "addresses": [{"dev": "wg0", "address": "10.9.0.2/32"}]}],
            "links": [item]}


def _peer(**changes: Any) -> Dict[str, Any]:
    peer = {"public_key": PEER, "allowed_ips": ["10.0.0.0/24"]}
    peer.update(changes)
    return peer


@pytest.mark.parametrize("link,field,words", [
    ({"private_key_file": None}, "links[0].private_key_file", "absolute path"),
    ({"private_key_file": "keys/wg.key"}, "links[0].private_key_file", "absolute path"),
    ({"listen_port": 0}, "links[0].listen_port", "1 to 65535"),
    ({"listen_port": True}, "links[0].listen_port", "1 to 65535"),
    ({"peers": {}}, "links[0].peers", "must be a list"),
    ({"peers": ["x"]}, "links[0].peers[0]", "mapping"),
    ({"peers": [_peer(preshared_key="x")]}, "links[0].peers[0]", "unknown key(s) preshared_key"),
    ({"peers": [_peer(public_key="short")]}, "links[0].peers[0].public_key", "base64 of 32 bytes"),
    ({"peers": [_peer(allowed_ips="10.0.0.0/24")]}, "links[0].peers[0].allowed_ips", "list of networks"),
    ({"peers": [_peer(allowed_ips=["10.0.0.1/24"])]}, "links[0].peers[0].allowed_ips[0]", "no host bits"),
    ({"peers": [_peer(allowed_ips=[7])]}, "links[0].peers[0].allowed_ips[0]", "network"),
    ({"peers": [_peer(endpoint="vpn.example.com:51820")]}, "links[0].peers[0].endpoint", "IP:PORT"),
    ({"peers": [_peer(endpoint="192.0.2.1")]}, "links[0].peers[0].endpoint", "IP:PORT"),
    ({"peers": [_peer(endpoint="2001:db8::1:51820")]}, "links[0].peers[0].endpoint", "[IPv6]:PORT"),
    ({"peers": [_peer(persistent_keepalive=-1)]}, "links[0].peers[0].persistent_keepalive", "0 (off)"),
    ({"peers": [_peer(), _peer()]}, "links[0].peers[1].public_key", "same peer as peers[0]"),
    ({"underlay_netns": "nowhere"}, "links[0].underlay_netns", "not declared"),
    ({"mac": "02:00:00:00:00:01"}, "links[0]", "unknown key(s) mac"),
])
def test_spec_refuses(link: Dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(NetnsError) as raised:
        parse_topology(_topology(**link))
    assert raised.value.obj == field and words in raised.value.message, (raised.value.obj, raised.value.message)


def test_spec_normalises() -> None:
    spec = parse_topology(_topology(peers=[_peer(endpoint="[2001:db8:0::1]:51820", allowed_ips=["10.1.0.0/16", "10.0.0.0/24"])]))
    link = spec.link_specs[0]
    assert link.peers[0].endpoint == "[2001:db8::1]:51820"
    assert link.peers[0].allowed_ips == frozenset({"10.0.0.0/24", "10.1.0.0/16"})
    assert link.peers[0].persistent_keepalive == 0 and link.underlay_netns is None and link.up is True


@pytest.mark.parametrize("text,shown", [("192.0.2.1:1", "192.0.2.1:1"), ("[::1]:65535", "[::1]:65535")])
def test_endpoint(text: str, shown: str) -> None:
    assert parse_endpoint(text, "e") == shown


def test_key_file_checks(key_file: str) -> None:
    assert read_private_key(key_file, "links[0].private_key_file") == PRIVATE
    for mode, words in ((0o640, "readable by group"), (0o604, "readable by others"), (0o620, "writable by group")):
        os.chmod(key_file, mode)
        with pytest.raises(NetnsError) as raised:
            read_private_key(key_file, "links[0].private_key_file")
        assert raised.value.obj == "links[0].private_key_file" and key_file in raised.value.message
        assert words in raised.value.message
    os.chmod(key_file, 0o600)
    os.chmod(os.path.dirname(key_file), 0o777)
    with pytest.raises(NetnsError, match="writable by others"):
        read_private_key(key_file, "f")
    os.chmod(os.path.dirname(key_file), 0o700)
    with open(key_file, "w") as handle:
        handle.write("not a key\n")
    with pytest.raises(NetnsError, match="holds no WireGuard private key") as raised:
        read_private_key(key_file, "f")
    assert "not a key" not in str(raised.value)
    with pytest.raises(NetnsError, match="does not exist"):
        read_private_key(key_file + ".missing", "f")


def _spec(**link: Any) -> Any:
    return wireguard_spec(parse_topology(_topology(**link)).links[0])


def _device(private: bytes = PRIVATE, port: int = 51820, peers: List[wg.Peer] = ()) -> wg.Device:
    return wg.Device(private, port, {peer.public_key: peer for peer in peers})


SAME = wg.Peer(PEER, "192.0.2.1:51820", frozenset({"0.0.0.0/0", "::/0"}), 25)


@pytest.mark.parametrize("backend", ["kernel", "userspace"])
@pytest.mark.parametrize("device,before,after", [
    (_device(peers=[SAME]), None, None),
    (_device(peers=[wg.Peer(PEER, "198.51.100.7:4000", SAME.allowed_ips, 25)]),  # roamed: endpoint declared
     {"peers": {PEER: dict(SAME.as_dict(), endpoint="198.51.100.7:4000", public_key=None)}}, {"peers": {PEER: SAME.as_dict()}}),
    (_device(port=40000, peers=[SAME]), {"listen_port": 40000}, {"listen_port": 51820}),
    (_device(private=OTHER, peers=[SAME]), {"private_key": "(another key)"}, {"private_key": "(from /k)"}),
    (_device(peers=[SAME, wg.Peer(PEER2)]), {"peers": {PEER2: wg.Peer(PEER2).as_dict()}}, {"peers": {PEER2: None}}),
])
def test_plan_settings(backend: str, device: wg.Device, before: Any, after: Any) -> None:
    changes = plan_settings(_spec(private_key_file="/k"), PRIVATE, device, backend)
    if after is None:
        assert changes == []
        return

    def strip(d: Dict[str, Any]) -> Dict[str, Any]:
        return {k: ({pk: (None if v is None else {x: y for x, y in v.items() if x != "public_key"})
                     for pk, v in val.items()} if k == "peers" else val) for k, val in d.items()}

    assert [(c.action, c.before, c.after) for c in changes] == [("update", strip(before), strip(after))]
    params = changes[0].params
    assert isinstance(params, WireguardSettings) and params.backend == backend


def test_a_new_device_gets_everything_and_undoes_with_its_link() -> None:
    [change] = plan_settings(_spec(private_key_file="/k"), PRIVATE, None, "userspace")
    assert change.before is None and set(change.after) == {"private_key", "listen_port", "peers"}
    assert change.params.new_link and change.params.key_file == "/k" and change.params.removed == ()


def test_only_the_changed_peer_is_set_and_no_key_is_in_a_change() -> None:
    spec = _spec(private_key_file="/k", peers=[_peer(), _peer(public_key=PEER2, allowed_ips=["10.2.0.0/24"])])
    device = _device(private=OTHER, peers=[wg.Peer(PEER, None, frozenset({"10.0.0.0/24"})), wg.Peer(PEER2)])
    [change] = plan_settings(spec, PRIVATE, device, "kernel")
    assert [p.public_key for p in change.params.peers] == [PEER2]
    text = json.dumps(change.as_dict()) + repr(change) + repr(change.params) + repr(device)
    for secret in (PRIVATE, OTHER):
        assert base64.b64encode(secret).decode() not in text and secret.hex() not in text


def test_uapi_request() -> None:
    settings = wg.Settings(PRIVATE, 51820, (wg.Peer(PEER, "[::1]:5", frozenset({"10.0.0.0/24", "fd00::/64"}), 25),),
                           (PEER2,))
    assert wg.uapi_request(settings).splitlines() == [
        "set=1", "private_key=" + PRIVATE.hex(), "listen_port=51820",
        "public_key=" + bytes([9] * 32).hex(), "remove=true",
        "public_key=" + bytes([7] * 32).hex(), "replace_allowed_ips=true", "persistent_keepalive_interval=25",
        "endpoint=[::1]:5", "allowed_ip=10.0.0.0/24", "allowed_ip=fd00::/64", ""]
    assert "private_key" not in wg.uapi_request(wg.Settings(None, None, (), (PEER2,)))
    assert repr(settings).count(PRIVATE.hex()) == 0


def test_genetlink_peer() -> None:
    peer = wg.genetlink_peer(wg.Peer(PEER, "[2001:db8::1]:51820", frozenset({"::/0"}), 0))
    assert peer == {"public_key": PEER, "replace_allowed_ips": True, "allowed_ips": ["::/0"], "persistent_keepalive": 0,
                    "endpoint_addr": "2001:db8::1", "endpoint_port": 51820}
    assert "endpoint_addr" not in wg.genetlink_peer(wg.Peer(PEER))


def test_uapi_names_are_unique_per_link_and_fit_ifnamsiz() -> None:
    names = {wg.uapi_name(ns, name) for ns in (None, "a", "b") for name in ("wg0", "wg1")}
    assert len(names) == 6 and all(len(name) <= 15 for name in names)


def test_forced_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wg.BACKEND_ENV, "userspace")
    assert wg.creation_backend() == "userspace"
    monkeypatch.setenv(wg.BACKEND_ENV, "kernel")
    assert wg.creation_backend() == "kernel"


def test_the_spec_item_keeps_no_key(key_file: str) -> None:
    topology = parse_topology(_topology(key_file))
    assert base64.b64encode(PRIVATE).decode() not in json.dumps(copy.deepcopy(topology.links))


class _Message(dict):
    """A decoded netlink message as pyroute2 hands it over: attributes by get_attr."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(attrs)

    def get_attr(self, name: str) -> Any:
        return self.get(name)


def test_genetlink_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel backend's read, from messages shaped as pyroute2 decodes them (untested on this kernel)."""
    peer = _Message(WGPEER_A_PUBLIC_KEY=PEER.encode(), WGPEER_A_ENDPOINT={"addr": "2001:db8::1", "port": 51820},
                    WGPEER_A_ALLOWEDIPS=[{"addr": "10.0.0.0/24"}, {"addr": "::/0"}], WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL=25)
    silent = _Message(WGPEER_A_PUBLIC_KEY=PEER2.encode(), WGPEER_A_ENDPOINT={"addr": "0.0.0.0", "port": 0})
    device = _Message(WGDEVICE_A_PRIVATE_KEY=base64.b64encode(PRIVATE), WGDEVICE_A_LISTEN_PORT=51820,
                      WGDEVICE_A_PEERS=[peer, silent])

    class FakeWireGuard:
        def info(self, name: str) -> List[Any]:
            assert name == "wg0"
            return [device]

        def close(self) -> None:
            pass

    class FakeKernel:
        @contextlib.contextmanager
        def entered(self, ns: Any) -> Any:
            yield

    monkeypatch.setattr(wg, "pyroute2_class", lambda name: FakeWireGuard)
    read = wg.read_genetlink(FakeKernel(), "vpn", "wg0", "link wg0")  # type: ignore[arg-type]
    assert read.private_key == PRIVATE and read.listen_port == 51820
    assert read.peers == {PEER: wg.Peer(PEER, "[2001:db8::1]:51820", frozenset({"10.0.0.0/24", "::/0"}), 25),
                          PEER2: wg.Peer(PEER2)}
    assert PRIVATE.hex() not in repr(read) and base64.b64encode(PRIVATE).decode() not in repr(read)


def test_an_existing_link_of_another_kind_is_refused() -> None:
    veth = Link(5, "wg0", "veth", 1500, None, True, None, None, None)
    with pytest.raises(NetnsError, match="exists as a veth link, not a wireguard device"):
        backend_of(veth, "vpn", "wg0")
    assert backend_of(Link(5, "wg0", "wireguard", 1420, None, True, None, None, None), "vpn", "wg0") == "kernel"
    with pytest.raises(NetnsError, match="exists as a tun link"):  # a TUN without its wireguard-go socket
        backend_of(Link(5, "wg0", "tun", 1420, None, True, None, None, None), "nowhere-at-all", "wg0")


def test_graph_draws_the_underlay_edge_without_keys() -> None:
    data = _topology()
    data["namespaces"].append({"name": "under"})
    data["links"][0]["underlay_netns"] = "under"
    topology = parse_topology(data, for_apply=False)
    dot = to_dot({"name": "t", "namespaces": topology.namespaces, "links": topology.links, "host": topology.host})
    assert "udp 51820" in dot and "wireguard, 1 peer" in dot


def test_genetlink_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel backend's requests: key and port at once, each removal, then each peer whole."""
    calls: List[Any] = []

    class FakeWireGuard:
        def set(self, name: str, **kwargs: Any) -> None:
            calls.append((name, kwargs))

        def close(self) -> None:
            calls.append("closed")

    class FakeKernel:
        @contextlib.contextmanager
        def entered(self, ns: Any) -> Any:
            calls.append(("entered", ns))
            yield

    monkeypatch.setattr(wg, "pyroute2_class", lambda name: FakeWireGuard)
    peer = wg.Peer(PEER, "192.0.2.1:51820", frozenset({"10.0.0.0/24"}), 25)
    wg.configure_genetlink(FakeKernel(), "vpn", "wg0", wg.Settings(PRIVATE, 51820, (peer,), (PEER2,)),  # type: ignore[arg-type]
                           "link wg0")
    assert calls == [
        ("entered", "vpn"),
        ("wg0", {"listen_port": 51820, "private_key": base64.b64encode(PRIVATE).decode()}),
        ("wg0", {"peer": {"public_key": PEER2, "remove": True}}),
        ("wg0", {"peer": wg.genetlink_peer(peer)}),
        "closed"]
    calls.clear()
    wg.configure_genetlink(FakeKernel(), None, "wg0", wg.Settings(None, None, (peer,)), "link wg0")  # type: ignore[arg-type]
    assert calls == [("entered", None), ("wg0", {"peer": wg.genetlink_peer(peer)}), "closed"]


class _EmptyNamespaces:
    """Only what planning a new device reads: namespaces that exist, with no links of that name."""

    def __init__(self, *namespaces: Optional[str]) -> None:
        self.cache = ReadCache()
        self._namespaces = set(namespaces) | {None}
        for ns in self._namespaces:
            self.cache.get(ns, "links", lambda _ns: {})

    def exists(self, ns: Optional[str]) -> bool:
        return ns in self._namespaces


@pytest.mark.parametrize("checking", [False, True])
def test_without_wireguard_go_apply_fails_before_any_change_and_check_mode_says_so(
        key_file: str, checking: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a host the role has not installed wireguard-go on yet, check mode (the role's own check runs
    before its package task) plans the device and says what is missing; an apply refuses in planning."""
    monkeypatch.setattr(wg, "creation_backend", lambda: "userspace")
    monkeypatch.setattr(wg, "wireguard_go", lambda: None)

    def plan() -> List[Any]:
        return plan_wireguard(_EmptyNamespaces("vpn"), _spec(key_file=key_file), Pending(checking=checking))  # type: ignore[arg-type]

    if not checking:
        with pytest.raises(NetnsError, match="wireguard-go is not installed"):
            plan()
        return
    create = plan()[0]
    assert (create.action, create.after["backend"], create.after["wireguard_go"]) == ("create", "userspace", "not installed (yet)")
