# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pyroute2, loaded only when a run changes something (its import alone is a third of a no-change
run of 100 namespaces)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from typing import Any, Optional, Tuple

from ..errors import NetnsError


def _pyroute2_missing() -> Optional[str]:
    """Why pyroute2 cannot be used, or None. Found without importing it."""
    try:
        if importlib.util.find_spec("pyroute2") is not None:
            return None
    except (ImportError, ValueError):
        pass
    return "ModuleNotFoundError: No module named 'pyroute2'"


PYROUTE2_IMPORT_ERROR = _pyroute2_missing()


class Pyroute2Missing(NetnsError):
    """pyroute2 cannot be loaded; ``details`` is the import's traceback."""

    def __init__(self, details: str) -> None:
        super().__init__("the Python library pyroute2 cannot be loaded: %s" % details.strip().splitlines()[-1])
        self.details = details


def require_pyroute2() -> None:
    """Load pyroute2 now: called before a run's first change, so that a host where it cannot be
    loaded fails with nothing changed."""
    try:
        importlib.import_module("pyroute2")
    except ImportError:
        raise Pyroute2Missing(traceback.format_exc()) from None


def pyroute2_class(name: str) -> Any:
    require_pyroute2()
    return getattr(sys.modules["pyroute2"], name)


def pyroute2_errors() -> Tuple[type, ...]:
    """pyroute2's NetlinkError once pyroute2 is loaded (before that, nothing can raise it)."""
    exceptions = sys.modules.get("pyroute2.netlink.exceptions")
    return (exceptions.NetlinkError,) if exceptions is not None else ()
