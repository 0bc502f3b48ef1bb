"""Every module's documentation, as ansible-doc shows it (doc fragments merged), parses and documents
exactly its argument spec (what ansible-doc and ansible-test validate-modules check), including
suboptions; its attributes are described and its RETURN has only the keys a return value may have."""

from __future__ import annotations

import glob
import importlib
import json
import os
import subprocess
import sys
from typing import Any, Dict

import pytest
import yaml

from helpers import COLLECTIONS

MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "modules", "*.py")))
FRAGMENTS = ["linuxnet.netns.attributes", "linuxnet.netns.managed_host"]
ATTRIBUTES = {"check_mode", "diff_mode", "platform"}
RETURN_KEYS = {"description", "returned", "type", "elements", "sample", "contains", "version_added"}


@pytest.fixture(scope="module")
def ansible_doc() -> Dict[str, Dict[str, Any]]:
    """ansible-doc --json for every module at once (one process: it takes about a second)."""
    ansible_doc_program = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    names = ["linuxnet.netns." + name for name in MODULES]
    # ansible-test units puts only Ansible's module side on PYTHONPATH; ansible-doc needs the controller's.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
    output = subprocess.run([ansible_doc_program, "--json", "-t", "module"] + names, env=env, check=True,
                            capture_output=True, text=True).stdout
    return {name[len("linuxnet.netns."):]: value for name, value in json.loads(output).items()}


def compare(options: dict, spec: dict, where: str) -> None:
    assert set(options) == set(spec), "%s: documented %s, accepted %s" % (where, sorted(options), sorted(spec))
    for name, doc in options.items():
        arg = spec[name]
        assert doc.get("type", "str") == arg.get("type", "str"), "%s.%s type" % (where, name)
        assert bool(doc.get("required", False)) == bool(arg.get("required", False)), "%s.%s required" % (where, name)
        assert doc.get("default") == arg.get("default"), "%s.%s default" % (where, name)
        assert doc.get("choices") == arg.get("choices"), "%s.%s choices" % (where, name)
        if "options" in arg or "suboptions" in doc:
            compare(doc.get("suboptions", {}), arg.get("options", {}), "%s.%s" % (where, name))


def check_return(values: dict, where: str) -> None:
    for name, value in values.items():
        assert isinstance(value, dict) and set(value) <= RETURN_KEYS, "%s.%s: keys %s" % (where, name, value)
        assert value["description"], "%s.%s description" % (where, name)
        check_return(value.get("contains", {}), "%s.%s" % (where, name))


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_argument_spec(name: str, ansible_doc: Dict[str, Dict[str, Any]]) -> None:
    module = importlib.import_module("ansible_collections.linuxnet.netns.plugins.modules." + name)
    documentation = ansible_doc[name]["doc"]
    assert documentation["module"] == name and documentation["short_description"]
    yaml.safe_load(module.EXAMPLES)
    compare(documentation["options"], module.ARGUMENT_SPEC, name)


@pytest.mark.parametrize("name", MODULES)
def test_shared_documentation_is_used(name: str) -> None:
    module = importlib.import_module("ansible_collections.linuxnet.netns.plugins.modules." + name)
    own = yaml.safe_load(module.DOCUMENTATION)
    assert "attributes" not in own, "%s: attributes come from linuxnet.netns.attributes" % name
    fragments = own["extends_documentation_fragment"]
    assert all(any(f == base or f.startswith(base + ".") for f in fragments) for base in FRAGMENTS), name


@pytest.mark.parametrize("name", MODULES)
def test_attributes_are_described(name: str, ansible_doc: Dict[str, Dict[str, Any]]) -> None:
    attributes = ansible_doc[name]["doc"]["attributes"]
    assert set(attributes) == ATTRIBUTES, name
    assert all(value["description"] and value["support"] for value in attributes.values()), name


@pytest.mark.parametrize("name", MODULES)
def test_return_has_no_stray_keys(name: str, ansible_doc: Dict[str, Dict[str, Any]]) -> None:
    returned = ansible_doc[name]["return"]
    module = importlib.import_module("ansible_collections.linuxnet.netns.plugins.modules." + name)
    assert returned == yaml.safe_load(module.RETURN)
    check_return(returned, name)
