# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The converge stage: plan, apply unless check mode, verify by planning again, and after a failure
roll back (or report what stands)."""

from __future__ import annotations

from typing import Callable, List, Optional

from .apply import execute
from .errors import NetnsError
from .kernel.library import Pyroute2Missing, require_pyroute2
from .kernel.session import Kernel
from .model import Change, Pending
from .rollback import Journal
from .system.host_lock import host_lock

Planner = Callable[[Kernel, Pending], List[Change]]


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
        shared.checking = True
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
                    kernel.cache.invalidate(keep_written=True)
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
