# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What /proc tells about the host: which processes hold which network namespace, and this boot's id."""

from __future__ import annotations

import os
from typing import Dict, List

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def pids_by_netns_inode() -> Dict[int, List[int]]:
    """Map namespace inode -> pids whose network namespace it is (like lsns), one /proc scan."""
    result: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            inode = os.stat("/proc/%s/ns/net" % entry).st_ino
        except OSError:
            continue
        result.setdefault(inode, []).append(int(entry))
    for pids in result.values():
        pids.sort()
    return result


def boot_id() -> str:
    """This boot's id: identities of namespaces and links hold within one boot only."""
    try:
        with open(BOOT_ID_PATH) as handle:
            return handle.read().strip()
    except OSError:
        return ""
