"""model.params_of: a change's params as the type its kind applies, and a mismatch as the engine's error."""

from __future__ import annotations

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.namespace import (
    NAMESPACE,
    NamespaceParams,
    SysctlParams,
)
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.model import Change, params_of


def test_the_params_of_the_expected_type_are_returned() -> None:
    params = NamespaceParams("a")
    assert params_of(Change("netns", "create", "a", params=params), NamespaceParams) is params


def test_params_of_another_kind_are_an_error_naming_the_change() -> None:
    change = Change("netns", "create", "a", params=SysctlParams(None, "net.ipv4.ip_forward", "1", "net.ipv4.ip_forward", "sysctls"))
    with pytest.raises(NetnsError) as raised:
        params_of(change, NamespaceParams)
    assert raised.value.obj == "create netns a"
    assert "SysctlParams" in raised.value.message and "NamespaceParams" in raised.value.message


def test_a_kind_refuses_a_change_it_does_not_handle_before_it_does_anything() -> None:
    change = Change("netns", "delete", "a", params=SysctlParams(None, "net.ipv4.ip_forward", "1", "net.ipv4.ip_forward", "sysctls"))
    with pytest.raises(NetnsError):
        NAMESPACE.undo(None, change)  # type: ignore[arg-type]  # no kernel: nothing may be read or changed
