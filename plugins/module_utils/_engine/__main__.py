# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python3 -m ansible_collections.linuxnet.netns.plugins.module_utils._engine``: the restore program
(``linuxnet-netns``) run from a checkout or an installed collection, without the role's copy."""
from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":  # run as a program only, not when imported (ansible-test's import test does)
    sys.exit(main())
