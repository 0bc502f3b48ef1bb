# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """What every module needs on the managed host."""

    DOCUMENTATION = r"""
requirements:
  - pyroute2 >= 0.7.2 on the managed host
  - root privileges on the managed host
attributes:
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: linux
    details:
      - Network namespaces are a Linux kernel feature.
"""
