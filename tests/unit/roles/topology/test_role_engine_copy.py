"""The role copies the engine package by package (fileglob does not recurse): its list of
packages must be the package tree the collection has, or the boot program would miss modules."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[4]
ENGINE = ROOT / "plugins" / "module_utils" / "_engine"


def test_the_role_copies_every_package_of_the_engine() -> None:
    role_vars = yaml.safe_load((ROOT / "roles" / "topology" / "vars" / "main.yml").read_text())
    packages = sorted(str(init.parent.relative_to(ENGINE)).replace(".", "")
                      for init in ENGINE.rglob("__init__.py"))
    assert sorted(role_vars["topology_engine_packages"]) == packages


def test_every_engine_directory_is_a_package() -> None:
    directories = [d for d in ENGINE.rglob("*") if d.is_dir() and d.name != "__pycache__"]
    assert all((d / "__init__.py").is_file() for d in directories), directories
