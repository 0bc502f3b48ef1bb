# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one flow every module follows: plan, apply unless check mode, verify, report.

It only needs an object with AnsibleModule's ``check_mode``, ``exit_json`` and ``fail_json``,
so the engine stays free of Ansible imports.
"""

from __future__ import annotations

import gc
from typing import Any, Callable, Dict, List, Optional

from .errors import NetnsError
from .host_lock import host_lock
from .kernel import PYROUTE2_IMPORT_ERROR, Kernel, Pyroute2Missing, require_pyroute2
from .plan import Change, Pending, diff_of, execute
from .rollback import Journal

Planner = Callable[[Kernel, Pending], List[Change]]
Reporter = Callable[[Kernel], Dict[str, Any]]


def converge(kernel: Kernel, planner: Planner, check_mode: bool, pending: Optional[Pending] = None,
             rollback: bool = False) -> List[Change]:
    """Plan and apply under the host lock, then re-plan: anything left over is an error. When a
    change fails, ``rollback`` reverses what this run did; otherwise the error lists it."""
    return converge_stages(kernel, [planner], check_mode, pending, rollback)


def converge_stages(kernel: Kernel, planners: List[Planner], check_mode: bool, pending: Optional[Pending] = None,
                    rollback: bool = False) -> List[Change]:
    """``converge`` for a run whose later stages must be planned on what earlier ones did (one lock,
    one journal). In check mode the stages share one ``Pending`` instead."""
    if check_mode:
        shared = pending or Pending()
        return [change for planner in planners for change in planner(kernel, shared)]
    changes: List[Change] = []
    with host_lock():
        journal = Journal(undoable=rollback)
        try:
            for planner in planners:
                stage = planner(kernel, Pending())
                if stage:
                    require_pyroute2()
                    execute(kernel, stage, check_mode=False, journal=journal)
                    # Re-read everything except what this run wrote whole (restored iptables tables).
                    kernel.invalidate(keep_written=True)
                changes += stage
            if changes:
                remaining = [change for planner in planners for change in planner(kernel, Pending())]
                if remaining:
                    raise NetnsError("the kernel did not reach the declared state; still differing: %s"
                                     % "; ".join(c.summary() for c in remaining))
        except Pyroute2Missing:  # found before the first change: nothing to report or undo
            raise
        except NetnsError as exc:
            raise _after_failure(kernel, exc, journal, rollback) from None
        except OSError as exc:  # a resource the run could not get (descriptors, memory): a refusal too
            failure = NetnsError(exc.strerror or str(exc), errno=exc.errno)
            raise _after_failure(kernel, failure, journal, rollback) from None
    return changes


def _after_failure(kernel: Kernel, exc: NetnsError, journal: Journal, rollback: bool) -> NetnsError:
    """The error to report once a change failed: what this run had done, whether it was undone, and
    (``standing``) what of it is still in the kernel."""
    done = [change for change, _undo in journal.entries]
    if not done:
        return NetnsError(exc.message + "; nothing had been changed", obj=exc.obj, errno=exc.errno)
    if not rollback:
        failure = NetnsError("%s; left as far as this run got, %d change(s) applied: %s"
                             % (exc.message, len(done), "; ".join(c.summary() for c in done)), obj=exc.obj, errno=exc.errno)
        failure.standing = done
        return failure
    kernel.release_descriptors()  # the failure may have been running out of them
    undone, problems = journal.roll_back(kernel)
    text = "%s; rolled back the %d change(s) this run had applied" % (exc.message, len(undone))
    if problems:
        text += "; NOT rolled back, still in effect: %s" % "; ".join(problems)
    failure = NetnsError(text, obj=exc.obj, errno=exc.errno)
    failure.standing = [change for change in done if change not in undone]
    return failure


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
    if PYROUTE2_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_library_msg, exception=PYROUTE2_IMPORT_ERROR)
    try:
        with Kernel() as kernel:
            changes = converger(kernel, module.check_mode)
            kernel.invalidate()
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
    if PYROUTE2_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_library_msg, exception=PYROUTE2_IMPORT_ERROR)
    try:
        with Kernel() as kernel:
            result = reader(kernel)
    except Pyroute2Missing as exc:
        module.fail_json(msg=missing_library_msg, exception=exc.details)
    except NetnsError as exc:
        module.fail_json(msg=str(exc), errno=exc.errno, object=exc.obj)
    module.exit_json(changed=False, **result)
