# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports of what the kernel holds: netns_info's facts and topology graphs.

Private to the linuxnet.netns collection: not a public API, it changes without notice."""
