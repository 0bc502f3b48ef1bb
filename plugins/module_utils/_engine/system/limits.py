# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The process's resource limits a run needs raised."""

from __future__ import annotations

import contextlib
import resource


def raise_open_file_limit() -> None:
    """Let the soft limit on open files reach the hard one.

    A run keeps a descriptor and a netlink socket per namespace it touches, and systemd starts
    services with a soft limit of 1024 (its hard limit is far higher): a boot-time restore of some
    500 namespaces would otherwise fail with EMFILE. Nothing here uses select(), which is why the
    soft limit is kept low by default.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else _kernel_max_open_files()
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _kernel_max_open_files() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 65536
