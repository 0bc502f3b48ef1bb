# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host outside netlink: namespace mounts and entering them, the host lock, files only root may
write, /proc, resource limits.

Private to the linuxnet.netns collection: not a public API, it changes without notice."""
