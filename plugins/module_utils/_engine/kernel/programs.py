# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Programs (iptables-save/-restore, their probes, wireguard-go) run inside a namespace: from argument lists, never a shell.

The one place the engine starts processes. It runs without Ansible too (the boot program), so not through
AnsibleModule.run_command, and it runs several iptables-restore at once, one per namespace."""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from ..errors import NetnsError
from .transport import ns_label

if TYPE_CHECKING:
    from .session import Kernel


class Programs:
    def __init__(self, session: "Kernel") -> None:
        self._session = session

    def run(self, ns: Optional[str], argv: Sequence[str], stdin: Optional[str] = None) -> str:
        """Run a program inside ``ns`` and return its standard output."""
        return self.finish(ns, argv, self.start(ns, argv, stdin))

    def start(self, ns: Optional[str], argv: Sequence[str], stdin: Optional[str] = None) -> "subprocess.Popen[str]":
        """Start a program inside ``ns`` (the child inherits the namespace of the thread that forks
        it), so that several can run at once; ``finish`` collects it. ``stdin`` is handed over whole
        in an in-memory file, so the child never waits for this process. Bytes that are no UTF-8
        (e.g. in a rule's comment someone else made) pass through unchanged."""
        with self._session.entered(ns):
            try:
                with _memory_file(stdin) as source:
                    return subprocess.Popen(list(argv), stdin=source, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, encoding="utf-8", errors="surrogateescape")
            except OSError as exc:
                raise NetnsError("cannot run %s" % argv[0], obj=ns_label(ns), errno=exc.errno) from None

    def start_daemon(self, ns: Optional[str], argv: Sequence[str], unset: Sequence[str], timeout: float) -> str:
        """Run a program that daemonises (wireguard-go) inside ``ns``, without the variables ``unset`` in
        its environment, to the exit of its starter; standard output back, NetnsError on a failure or
        a starter still running after ``timeout`` seconds. Its daemon must not keep our pipes open."""
        env = {key: value for key, value in os.environ.items() if key not in unset}
        with self._session.entered(ns):
            try:
                done = subprocess.run(list(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                      errors="replace", timeout=timeout, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise NetnsError("cannot run %s: %s" % (argv[0], exc), obj=ns_label(ns)) from None
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no message"]
            raise NetnsError("%s exited with %d: %s" % (os.path.basename(argv[0]), done.returncode, last[0]),
                             obj=ns_label(ns))
        return done.stdout

    @staticmethod
    def finish(ns: Optional[str], argv: Sequence[str], proc: "subprocess.Popen[str]") -> str:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise NetnsError(
                "%s exited with %d: %s" % (" ".join(argv[:2]), proc.returncode, stderr.strip()),
                obj=ns_label(ns),
            )
        return stdout


def completed(argv: Sequence[str], stdin: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
    """Run a program in this thread's namespace to its end, for a caller that judges its exit status itself
    (a probe's failure is an answer). OSError when it cannot be started."""
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def _memory_file(text: Optional[str]) -> Iterator[int]:
    """A descriptor to read ``text`` from (/dev/null for no text), closed on leaving."""
    if text is None:
        yield subprocess.DEVNULL
        return
    fd = os.memfd_create("linuxnet-netns-input", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as handle:
            handle.write(text.encode("utf-8", "surrogateescape"))
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)
