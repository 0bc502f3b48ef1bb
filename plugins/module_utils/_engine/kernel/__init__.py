# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to linuxnet.netns, no public API: the engine's session with the kernel (session.py), its
read cache (cache.py), netlink transport (transport.py), program runner (programs.py) and the lazy
loading of pyroute2 (library.py)."""
