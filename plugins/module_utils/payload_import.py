# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import the collection's files from Ansible's zip payload with one compilation instead of two.

Ansible runs a module by putting its code, and every module_utils file it imports, into a zip that
Python imports from (zipimport). The zip holds no bytecode, so each file is compiled on every run,
and CPython's zipimport compiles it twice: once to find it (``find_spec`` asks ``get_filename``,
which compiles to learn where the code would come from) and once to run it. For the topology
module that is ~0.2 MB of the collection's source and, measured, ~30 ms of every run. The finder
below answers ``find_spec`` for the payload's collection packages from the zip's listing alone;
loading stays with zipimport, so each file is compiled once.

Every module calls ``install()`` before importing the rest of the collection (Ansible's own
module_utils are loaded by its wrapper before any module code). Outside a zip payload (tests, the
restore program, an exploded module) it installs nothing.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import zipimport
from typing import Any, Optional, Sequence

PACKAGES = ("ansible_collections.",)


class OneCompileFinder:
    """``find_spec`` for modules of the payload's packages, without compiling them."""

    @staticmethod
    def find_spec(fullname: str, path: Optional[Sequence[str]] = None, target: Any = None) -> Any:
        if not path or not fullname.startswith(PACKAGES):
            return None
        for entry in path:
            try:
                importer = zipimport.zipimporter(entry)
            except zipimport.ZipImportError:
                return None  # a directory before any zip: the usual finders decide
            try:
                is_package = importer.is_package(fullname)  # from the zip's listing: nothing compiled
            except zipimport.ZipImportError:
                continue  # not in this part of the zip
            return _spec(fullname, entry, importer, is_package)
        return None


def _spec(fullname: str, entry: str, importer: zipimport.zipimporter, is_package: bool) -> importlib.machinery.ModuleSpec:
    """The spec zipimport's own ``find_spec`` would give, without its compilation."""
    tail = os.path.join(entry, fullname.rpartition(".")[2])
    spec = importlib.machinery.ModuleSpec(fullname, importer, origin=os.path.join(tail, "__init__.py") if is_package
                                          else tail + ".py", is_package=is_package)
    spec.has_location = True  # __file__ as zipimport would set it
    if is_package:
        spec.submodule_search_locations = [tail]
    return spec


def install() -> None:
    """Put the finder first, when this module itself was loaded from a zip payload."""
    if isinstance(globals().get("__loader__"), zipimport.zipimporter) and OneCompileFinder not in sys.meta_path:
        sys.meta_path.insert(0, OneCompileFinder)
