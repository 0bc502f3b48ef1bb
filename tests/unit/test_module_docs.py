"""Every module's documentation parses and documents exactly its argument spec (what ansible-doc
and ansible-test validate-modules check), including suboptions."""

from __future__ import annotations

import glob
import importlib
import os

import pytest
import yaml

MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(
    os.path.dirname(__file__), "..", "..", "plugins", "modules", "*.py")))


def compare(options: dict, spec: dict, where: str) -> None:
    assert set(options) == set(spec), "%s: documented %s, accepted %s" % (where, sorted(options), sorted(spec))
    for name, doc in options.items():
        arg = spec[name]
        assert doc.get("type", "str") == arg.get("type", "str"), "%s.%s type" % (where, name)
        assert bool(doc.get("required", False)) == bool(arg.get("required", False)), "%s.%s required" % (where, name)
        assert doc.get("default") == arg.get("default") or (doc.get("default") is None and arg.get("default") == []), \
            "%s.%s default" % (where, name)
        assert doc.get("choices") == arg.get("choices"), "%s.%s choices" % (where, name)
        if "options" in arg or "suboptions" in doc:
            compare(doc.get("suboptions", {}), arg.get("options", {}), "%s.%s" % (where, name))


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_argument_spec(name: str) -> None:
    module = importlib.import_module("ansible_collections.linuxnet.netns.plugins.modules." + name)
    documentation = yaml.safe_load(module.DOCUMENTATION)
    assert documentation["module"] == name and documentation["short_description"]
    yaml.safe_load(module.EXAMPLES)
    assert isinstance(yaml.safe_load(module.RETURN), dict)
    compare(documentation["options"], module.ARGUMENT_SPEC, name)
