# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ansible side of a module run: the engine's result or error as exit_json / fail_json.

Private to the linuxnet.netns collection (not a public API). It only needs an object with
AnsibleModule's ``check_mode``, ``exit_json`` and ``fail_json``; the engine below it
(``_engine``) has no Ansible imports at all.
"""

from __future__ import annotations

import gc
from typing import Any, Callable, Dict, List

from ._engine.converge import Planner, converge
from ._engine.errors import NetnsError
from ._engine.kernel.library import Pyroute2Missing
from ._engine.kernel.session import Kernel
from ._engine.model import Change, Pending, diff_of

Reporter = Callable[[Kernel], Dict[str, Any]]


def run_module(module: Any, planner: Planner, reporter: Reporter, missing_library_msg: str) -> None:
    """Run a module whose whole job is one plan (every per-object module). In check mode a
    namespace or link that is missing is assumed to come from an earlier task, with a warning."""
    pending = Pending(assume_missing=True)

    def converger(kernel: Kernel, check_mode: bool) -> List[Change]:
        # One object's changes: a refusal part-way undoes the ones before it.
        changes = converge(kernel, planner, check_mode, pending, rollback=True)
        for thing in sorted(pending.assumed):
            module.warn("check mode: %s does not exist yet; assuming an earlier task creates it" % thing)
        return changes

    run_converger(module, converger, reporter, missing_library_msg)


def run_converger(module: Any, converger: Callable[[Kernel, bool], List[Change]], reporter: Reporter,
                  missing_library_msg: str) -> None:
    """Run ``converger(kernel, check_mode)`` and report; engine errors become fail_json here only."""
    _freeze_loaded_objects()
    # Reads go through the engine's own netlink; pyroute2 is loaded before the first change only
    # (Pyroute2Missing, nothing changed). So --check, and a run that finds nothing to do (an absent
    # topology on a host that never had it), work on a host the role has yet to install it on.
    try:
        with Kernel() as kernel:
            changes = converger(kernel, module.check_mode)
            kernel.cache.invalidate()
            state = reporter(kernel)
    except Pyroute2Missing as exc:
        module.fail_json(msg=missing_library_msg, exception=exc.details)
    except NetnsError as exc:
        module.fail_json(msg=str(exc), errno=exc.errno, object=exc.obj, changed=bool(exc.standing),
                         changes=[c.as_dict() for c in exc.standing])
    result: Dict[str, Any] = dict(state)
    result.update(changed=bool(changes), changes=[c.as_dict() for c in changes])
    if getattr(module, "_diff", False):  # as Ansible's own modules: a diff only when one is asked for
        result["diff"] = diff_of(changes)
    module.exit_json(**result)


def _freeze_loaded_objects() -> None:
    # A module's process ends with its one run: what exists once its code is loaded (Ansible's and
    # ours, ~100,000 objects) lives until then. Frozen (gc.freeze), neither the collections of the run
    # nor the one at interpreter exit walk it again: ~14 ms a run at N=100, most of it at exit.
    gc.freeze()


def run_reader(module: Any, reader: Reporter, missing_library_msg: str) -> None:
    """Run an information module: read only, never changed; engine errors become fail_json here."""
    _freeze_loaded_objects()
    # No upfront demand for pyroute2: reads go through the engine's own netlink, and the few that need
    # pyroute2 raise Pyroute2Missing (so fleet.yml's absent check works on a host that never had it).
    try:
        with Kernel() as kernel:
            result = reader(kernel)
    except Pyroute2Missing as exc:
        module.fail_json(msg=missing_library_msg, exception=exc.details)
    except NetnsError as exc:
        module.fail_json(msg=str(exc), errno=exc.errno, object=exc.obj)
    module.exit_json(changed=False, **result)
