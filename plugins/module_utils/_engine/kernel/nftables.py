# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables in the calling thread's namespace: through libnftables in this process (Debian's
python3-nftables binding), or, where the binding is missing, one ``nft`` process per batch.

A libnftables context opens its netlink socket when it is created (nft_ctx_new), in the namespace
the thread is in at that moment: a context made in one namespace keeps talking to that one after
setns. So every call makes its context here, after the caller has entered the namespace, and
drops it afterwards; a context is never shared between namespaces.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
from typing import Any, Iterator, List, Optional, Tuple

from ..errors import NetnsError
from . import programs

# "program": always the nft fallback (tests, or a host whose binding misbehaves); anything else: the
# binding when it can be imported.
BACKEND_ENV = "LINUXNET_NETNS_NFT"
BINDING = "libnftables"
PROGRAM = "nft -f"
# libnftables waits for its socket's replies with select(): a socket numbered FD_SETSIZE or above aborts
# the whole process (glibc: "bit out of range 0 - FD_SETSIZE on fd_set"). A run keeps a descriptor and a
# socket per namespace it touches (with its open-file limit raised), so from some 500 namespaces on the
# lowest free number is above it.
FD_SETSIZE = 1024


class Backend:
    """Runs one nft command buffer (one transaction) in this thread's namespace."""

    name = ""

    def run(self, text: str, json_output: bool = False, dry_run: bool = False) -> Tuple[int, str, str]:
        """(status, output, errors); ``json_output``: JSON out, and the input read as JSON too."""
        raise NotImplementedError

    def listing(self) -> List[Any]:
        """This namespace's whole ruleset as nft's JSON objects (metainfo left out)."""
        rc, out, err = self.run("list ruleset", json_output=True)
        if rc != 0:
            raise NetnsError("nft list ruleset failed: %s" % first_line(err), obj="nftables")
        try:
            objects = json.loads(out)["nftables"] if out.strip() else []
        except (ValueError, KeyError, TypeError):
            raise NetnsError("nft printed a listing that is no JSON ruleset", obj="nftables") from None
        return [item for item in objects if isinstance(item, dict) and "metainfo" not in item]


class BindingBackend(Backend):
    """libnftables through Debian's python3-nftables: a fresh context per call, in this namespace."""

    name = BINDING

    def __init__(self, module: Any) -> None:
        self._module = module
        # Taken when the backend is chosen, early in a run while few descriptors are open: a number
        # below FD_SETSIZE kept free for a context's socket once all the others are in use.
        self._reserve: Optional[int] = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        if self._reserve >= FD_SETSIZE:
            os.close(self._reserve)
            self._reserve = None

    def run(self, text: str, json_output: bool = False, dry_run: bool = False) -> Tuple[int, str, str]:
        with self._low_descriptor():
            context = self._module.Nftables()
            context.set_json_output(json_output)
            context.set_dry_run(dry_run)
            rc, out, err = context.cmd(text)
            del context  # closes its socket (nft_ctx_free), before the reserve is taken back
        return rc, out or "", err or ""

    @contextlib.contextmanager
    def _low_descriptor(self) -> Iterator[None]:
        """The reserved number given up while a context is made and used, when no lower one is free
        (the socket gets the lowest free number)."""
        lowest = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        os.close(lowest)
        if lowest < FD_SETSIZE or self._reserve is None:
            yield
            return
        os.close(self._reserve)
        try:
            yield
        finally:
            self._reserve = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


class ProgramBackend(Backend):
    """``nft`` from an argument list, its input on stdin: the child inherits this thread's namespace."""

    name = PROGRAM

    def run(self, text: str, json_output: bool = False, dry_run: bool = False) -> Tuple[int, str, str]:
        if text == "list ruleset":  # nft -f prints no listing: a listing is asked for in its arguments
            argv = ["nft"] + (["-j"] if json_output else []) + ["list", "ruleset"]
            stdin: Optional[str] = None
        else:
            argv = ["nft"] + (["-j"] if json_output else []) + (["-c"] if dry_run else []) + ["-f", "-"]
            stdin = text
        try:
            proc = programs.completed(argv, stdin)
        except OSError as exc:
            raise NetnsError("cannot run nft (nftables is not installed?)", obj="nftables", errno=exc.errno) from None
        return proc.returncode, proc.stdout, proc.stderr


_CHOSEN: List[Backend] = []


def backend() -> Backend:
    """The binding when it imports (once per process), else the nft program."""
    if not _CHOSEN:
        _CHOSEN.append(_choose())
    return _CHOSEN[0]


def _choose() -> Backend:
    if os.environ.get(BACKEND_ENV) == "program":
        return ProgramBackend()
    try:
        module = importlib.import_module("nftables")
    except ImportError:
        return ProgramBackend()
    if not hasattr(module, "Nftables"):
        return ProgramBackend()
    try:
        module.Nftables()  # libnftables.so.1 itself may be missing
    except OSError:
        return ProgramBackend()
    return BindingBackend(module)


def available() -> bool:
    """Whether this host can run nftables commands at all (the binding, or an nft program on PATH)."""
    return isinstance(backend(), BindingBackend) or shutil.which("nft") is not None


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else "no message"


def error_text(text: str) -> str:
    """nft's whole error report on one line (the message and the part of the input it points at)."""
    return " / ".join(line.rstrip() for line in text.strip().splitlines() if line.strip()) or "no message"
