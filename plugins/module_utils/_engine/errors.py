# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's single domain exception."""

from __future__ import annotations

import errno as errno_names
import os
from typing import Any, List, Optional


class NetnsError(Exception):
    """Anything the engine refuses or the kernel rejects.

    ``obj`` names the object concerned (``"address 10.0.0.1/24 on veth1 in netns msb"``),
    ``errno`` is the kernel's error number when there is one.
    """

    def __init__(self, message: str, obj: Optional[str] = None, errno: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.obj = obj
        self.errno = errno
        # A failed run's changes that are still in the kernel (applied and not rolled back).
        self.standing: List[Any] = []

    def __str__(self) -> str:
        text = self.message
        if self.obj:
            text = "%s: %s" % (self.obj, text)
        if self.errno:
            name = errno_names.errorcode.get(self.errno, "?")
            text = "%s [errno %d %s: %s]" % (text, self.errno, name, os.strerror(self.errno))
        return text


def errno_of(exc: BaseException) -> Optional[int]:
    """The errno carried by an OSError or a pyroute2 NetlinkError, if any."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    code = getattr(exc, "errno", None)
    return code if isinstance(code, int) else None
