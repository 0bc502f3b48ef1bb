# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The linuxnet.netns engine: network-namespace topologies over netlink, with no Ansible imports.

The stages of a run are its modules: spec (parse and validate) -> kinds (read, plan, apply, undo
of each kind of object) -> apply -> converge (verify, and roll back on failure) -> topology (a
whole topology, with ownership). docs/architecture.md describes them.

Private to the linuxnet.netns collection: not a public API, it changes without notice."""
