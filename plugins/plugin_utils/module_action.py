# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action each of the collection's modules runs under: Ansible's usual one (``normal``), with
the objects the worker process inherited frozen out of the garbage collector's way, and the
collector paused while the module is packaged and run.

Ansible runs a task in a worker process forked from ansible-playbook. Before the module starts,
the worker packages it with every module_utils file it imports, parsing each file into a syntax
tree: ~100,000 short-lived objects for this collection's ~200 KB. Those allocations set off
Python's cyclic garbage collector, whose full collections walk every object the worker inherited
from ansible-playbook too (py-spy and gc.callbacks in the worker: one full collection of ~30 ms,
~45 ms of collections in all, per task at the benchmark's N=100). Inherited objects are not the
task's garbage: ``gc.freeze()``, which CPython documents for forked workers, moves them to a
generation no collection walks. The syntax trees are not cyclic (reference counting frees each one
as soon as it has been read), so collecting during the packaging only costs time: the collector is
paused for the action and resumes, with whatever cyclic garbage there is by then, when it returns.
Measured at N=100, alternating: freezing alone ~32 ms a task, with the pause ~15 ms more.
Everything else is the normal action's: arguments, check and diff mode, async, results. The worker
exits after its task.
"""

from __future__ import annotations

import gc
from typing import Any, Dict, Optional

from ansible.plugins.action.normal import ActionModule as NormalAction


class ModuleAction(NormalAction):

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        gc.freeze()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return super().run(tmp, task_vars)
        finally:
            if was_enabled:
                gc.enable()
