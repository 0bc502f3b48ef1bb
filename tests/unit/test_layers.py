"""The engine's imports go downwards only (docs/architecture.md): a stage imports the stages and
layers below it, never one above; nothing in the engine imports Ansible or the Ansible glue."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "plugins" / "module_utils" / "_engine"
# Lower numbers are lower layers; modules of one layer may import each other.
LAYERS = {
    "errors": 0,
    "_netlink": 1, "validation": 1, "system": 1,
    "kernel": 2,
    "model": 3,
    "kinds": 4,
    "spec": 5, "apply": 5, "rollback": 5,
    "converge": 6, "ownership": 6,
    "topology": 7, "report": 7,
    "cli": 8,
    "__main__": 9,
}


def _unit(module: Tuple[str, ...]) -> str:
    """The top-level name under _engine a module belongs to (a file or a sub-package)."""
    return module[0] if module else ""


def _imports(path: Path) -> Iterator[Tuple[Tuple[str, ...], int]]:
    """(module under _engine as a tuple of names, line) for each relative import of ``path``."""
    here = path.relative_to(ENGINE).with_suffix("").parts
    package = here[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = base + tuple((node.module or "").split(".")) if node.module else base
            names = [alias.name for alias in node.names]
            yield (target + (names[0],) if not node.module else target), node.lineno
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            assert not (module or "").startswith("ansible"), "%s:%d imports %s" % (path, node.lineno, module)


SOURCES = sorted(ENGINE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ENGINE)) for p in SOURCES])
def test_imports_go_downwards(path: Path) -> None:
    unit = _unit(path.relative_to(ENGINE).with_suffix("").parts)
    if unit == "__init__":
        return
    for target, line in _imports(path):
        assert len(target) >= 1 and target[0] != "..", "%s:%d leaves the engine" % (path, line)
        other = _unit(target)
        if other in ("", unit):
            continue
        assert LAYERS[other] <= LAYERS[unit], "%s:%d: %s (layer %d) imports %s (layer %d)" % (
            path.relative_to(ENGINE), line, unit, LAYERS[unit], other, LAYERS[other])


def test_every_part_of_the_engine_has_a_layer() -> None:
    parts = {p.relative_to(ENGINE).with_suffix("").parts[0] for p in SOURCES} - {"__init__"}
    assert parts == set(LAYERS)
