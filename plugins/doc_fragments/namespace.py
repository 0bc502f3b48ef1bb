# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The option of the modules that act inside one network namespace."""

    DOCUMENTATION = r"""
options:
  netns:
    description:
      - Name of the network namespace to act in, as under C(/run/netns).
      - Omit for the root namespace (the host's own devices, routes and firewall).
    type: str
"""
