"""The engine's own request encoder (_netlink/encode.py) against pyroute2's request compiler.

Every form of request the engine encodes itself is compiled by both, in the interpreter modules
run with (pyroute2 0.9, and 0.7.2 in make test's second pass), and the messages compared field by
field: type, flags, fixed header, attributes (in any order). Whether the kernel does with them
what the engine means is what every other test shows.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List, Tuple

import pytest
from helpers import COLLECTIONS, MODULE_PYTHON

from ansible_collections.linuxnet.netns.plugins.module_utils._engine._netlink.encode import encode_request

# (kind, command, IPRoute's keyword arguments): the forms the engine's appliers send
FORMS: List[Tuple[str, str, Dict[str, Any]]] = [
    ("link", "set", {"index": 5, "state": "up"}),
    ("link", "set", {"index": 5, "state": "down"}),
    ("link", "set", {"index": 5, "mtu": 1400, "address": "02:00:00:aa:bb:01"}),
    ("link", "set", {"index": 5, "mtu": 9000, "state": "up"}),
    ("link", "set", {"index": 5, "master": 7}),
    ("link", "set", {"index": 5, "master": 0}),
    ("link", "set", {"index": 5, "net_ns_fd": 9}),
    ("link", "del", {"index": 5}),
    ("addr", "add", {"index": 5, "address": "10.0.0.1", "prefixlen": 30}),
    ("addr", "add", {"index": 5, "address": "10.0.0.1", "prefixlen": 32, "flags": 2}),
    ("addr", "add", {"index": 5, "address": "fd00::1", "prefixlen": 64}),
    ("addr", "add", {"index": 5, "address": "fd00::1", "prefixlen": 64, "flags": 2}),
    ("addr", "del", {"index": 5, "address": "10.0.0.1", "prefixlen": 30}),
    ("addr", "del", {"index": 5, "address": "fd00::1", "prefixlen": 64}),
    ("route", "add", {"family": 2, "dst": "0.0.0.0", "dst_len": 0, "table": 254, "priority": None,
                      "gateway": "10.0.0.2"}),
    ("route", "add", {"family": 2, "dst": "10.9.0.0", "dst_len": 16, "table": 4242, "priority": 50,
                      "gateway": "10.0.0.2", "oif": 5, "scope": 0, "prefsrc": "10.0.0.1", "flags": 4}),
    ("route", "add", {"family": 2, "dst": "10.8.0.0", "dst_len": 16, "table": 254, "priority": 0, "oif": 5,
                      "scope": 253}),
    ("route", "add", {"family": 10, "dst": "::", "dst_len": 0, "table": 100, "priority": None,
                      "gateway": "fd00::2"}),
    ("route", "replace", {"family": 10, "dst": "fd01::", "dst_len": 64, "table": 254, "priority": 7,
                          "gateway": "fd00::2"}),
    ("route", "replace", {"family": 2, "dst": "10.7.0.0", "dst_len": 24, "table": 254, "priority": None,
                          "gateway": "10.0.0.3", "oif": 5}),
    ("route", "del", {"family": 2, "dst": "10.9.0.0", "dst_len": 16, "table": 4242, "priority": 50, "scope": 255}),
    ("route", "del", {"family": 10, "dst": "::", "dst_len": 0, "table": 254, "priority": None, "scope": 255}),
    ("rule", "add", {"family": 2, "priority": 1000, "table": 100, "action": 1, "src": "10.1.0.0", "src_len": 24}),
    ("rule", "add", {"family": 2, "priority": 1200, "table": 254, "action": 1, "fwmark": 1, "fwmask": 0xFFFFFFFF}),
    ("rule", "add", {"family": 10, "priority": 1400, "table": 4242, "action": 1, "dst": "fd00::", "dst_len": 64,
                     "iifname": "cs", "oifname": "e0"}),
    ("rule", "add", {"family": 10, "priority": 5, "table": 7, "action": 1, "src": "fd01::", "src_len": 48,
                     "fwmark": 16, "fwmask": 0xF0, "protocol": 4}),
    ("rule", "del", {"family": 2, "priority": 1000, "table": 100, "action": 1, "src": "10.1.0.0", "src_len": 24}),
    ("rule", "del", {"family": 10, "priority": 1400, "table": 4242, "action": 1, "dst": "fd00::", "dst_len": 64,
                     "iifname": "cs", "oifname": "e0", "protocol": 4}),
]

COMPILE = r"""
import json, sys
from pyroute2 import IPBatch
batch = IPBatch()
out = []
for kind, command, args in json.loads(sys.argv[1]):
    batch.reset()
    getattr(batch, kind)(command, **args)
    out.append(bytes(batch.batch).hex())
print(json.dumps(out))
"""

FIXED_HEADER = {16: 16, 17: 16, 20: 8, 21: 8, 24: 12, 25: 12, 32: 12, 33: 12}  # by message type


def fields(message: bytes) -> Dict[str, Any]:
    """What the kernel reads of a request: all but sequence and port, attributes in any order."""
    length = int.from_bytes(message[0:4], "little")
    msg_type = int.from_bytes(message[4:6], "little")
    fixed = bytearray(message[16:16 + FIXED_HEADER[msg_type]])
    attributes = []
    offset = 16 + len(fixed)
    while offset + 4 <= length:
        size, kind = int.from_bytes(message[offset:offset + 2], "little"), int.from_bytes(message[offset + 2:offset + 4], "little")
        attributes.append((kind, message[offset + 4:offset + size].hex()))
        offset += (size + 3) & ~3
    if msg_type in (24, 25) and any(kind == 15 and int(value, 16) and int.from_bytes(bytes.fromhex(value), "little") > 255
                                    for kind, value in attributes):
        fixed[4] = 0  # rtm_table: with RTA_TABLE above 255 the kernel ignores it (0.7 writes 252, 0.9 254)
    return {"length": length, "type": msg_type, "flags": int.from_bytes(message[6:8], "little"),
            "header": bytes(fixed).hex(), "attributes": sorted(attributes)}


@pytest.fixture(scope="module")
def compiled() -> List[bytes]:
    proc = subprocess.run([MODULE_PYTHON, "-c", COMPILE, json.dumps(FORMS)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=COLLECTIONS), check=False)
    assert proc.returncode == 0, proc.stderr
    return [bytes.fromhex(text) for text in json.loads(proc.stdout)]


@pytest.mark.parametrize("index", range(len(FORMS)), ids=["%s %s %d" % (k, c, i) for i, (k, c, _a) in enumerate(FORMS)])
def test_encoder_agrees_with_pyroute2(index: int, compiled: List[bytes]) -> None:
    kind, command, args = FORMS[index]
    ours = encode_request(kind, command, args)
    assert ours is not None, "the engine sends this form itself"
    assert fields(ours) == fields(compiled[index])


@pytest.mark.parametrize("index", [i for i, form in enumerate(FORMS) if form[:2] == ("rule", "add")])
def test_a_rule_appended_is_one_added_without_nlm_f_excl(index: int) -> None:
    """pyroute2 has no "append" for rules: the engine's is its "add" with NLM_F_APPEND for NLM_F_EXCL."""
    appended, added = fields(encode_request("rule", "append", FORMS[index][2])), fields(encode_request(*FORMS[index]))
    assert added["flags"] & 0x200 and not appended["flags"] & 0x200 and appended["flags"] & 0x800
    assert dict(appended, flags=None) == dict(added, flags=None)


@pytest.mark.parametrize("kind,command,args", [
    ("link", "add", {"ifname": "x", "kind": "dummy"}),  # creations stay with pyroute2
    ("link", "set", {"index": 5, "ifname": "renamed"}),  # an argument not encoded here
    ("addr", "add", {"address": "10.0.0.1", "prefixlen": 24}),  # no index
    ("route", "get", {"family": 2, "dst": "10.0.0.1", "dst_len": 32, "table": 254}),
])
def test_other_requests_are_left_to_pyroute2(kind: str, command: str, args: Dict[str, Any]) -> None:
    assert encode_request(kind, command, args) is None
