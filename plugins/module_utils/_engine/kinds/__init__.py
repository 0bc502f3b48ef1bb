# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One module per kind of object: its spec, read, plan, apply, undo and report.

Private to the linuxnet.netns collection: not a public API, it changes without notice."""
