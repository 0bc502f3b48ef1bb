"""No shell is ever invoked, so no user-supplied string can be interpreted by one: every program the
engine, the modules and the role's restore program run is started from an argument list."""

from __future__ import annotations

import ast
import os
from typing import List

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
SOURCES = sorted(os.path.join(d, f) for base in ("plugins", "roles")
                 for d, _dirs, files in os.walk(os.path.join(ROOT, base)) for f in files if f.endswith(".py"))
FORBIDDEN_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput")}


def calls(tree: ast.AST) -> List[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


@pytest.mark.parametrize("path", SOURCES, ids=[os.path.relpath(p, ROOT) for p in SOURCES])
def test_no_shell(path: str) -> None:
    with open(path) as handle:
        tree = ast.parse(handle.read())
    for call in calls(tree):
        for keyword in call.keywords:
            assert not (keyword.arg == "shell" and getattr(keyword.value, "value", False) is True), \
                "%s:%d runs a shell" % (path, call.lineno)
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            assert (func.value.id, func.attr) not in FORBIDDEN_CALLS, "%s:%d calls %s.%s" % (path, call.lineno, func.value.id, func.attr)
        if isinstance(func, ast.Attribute) and func.attr == "run_command":  # AnsibleModule.run_command
            assert not any(k.arg == "use_unsafe_shell" for k in call.keywords), "%s:%d" % (path, call.lineno)


def test_sources_found() -> None:
    assert len(SOURCES) > 20
