# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The veth module's action: Ansible's normal one, see plugins/plugin_utils/module_action.py."""

from __future__ import annotations

from ansible_collections.linuxnet.netns.plugins.plugin_utils.module_action import ModuleAction as ActionModule

__all__ = ["ActionModule"]
