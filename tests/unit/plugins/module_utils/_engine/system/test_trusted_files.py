"""Files of state and their directories: trusted only when root owns them and no one else can write
them; written without following a symbolic link at any step; never a FIFO or a device opened."""

from __future__ import annotations

import os
import stat
import threading
from typing import Any, Callable

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.system import trusted_files
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError

NOBODY = 65534


def mode_of(path: Any) -> int:
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


@pytest.fixture
def state(tmp_path: Any) -> Any:
    """A trusted state directory holding one trusted file."""
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    (directory / "t.json").write_text('{"a": 1}\n')
    os.chmod(str(directory / "t.json"), 0o600)
    return directory


def test_a_trusted_file_is_read(state: Any) -> None:
    assert trusted_files.read_trusted(str(state / "t.json")) == '{"a": 1}\n'


def test_a_missing_file_or_directory_is_none(state: Any) -> None:
    assert trusted_files.read_trusted(str(state / "nothing.json")) is None
    assert trusted_files.read_trusted(str(state / "no-dir" / "t.json")) is None


UNTRUSTED: Any = [
    ("file owned by another uid", lambda d: os.chown(str(d / "t.json"), NOBODY, -1), "t.json", "owned by uid 65534"),
    ("file mode 0666", lambda d: os.chmod(str(d / "t.json"), 0o666), "t.json", "writable by others"),
    ("file mode 0620", lambda d: os.chmod(str(d / "t.json"), 0o620), "t.json", "writable by group"),
    ("directory owned by another uid", lambda d: os.chown(str(d), NOBODY, -1), "state", "owned by uid 65534"),
    ("directory mode 0777", lambda d: os.chmod(str(d), 0o777), "state", "writable by others"),
    ("directory mode 0770", lambda d: os.chmod(str(d), 0o770), "state", "writable by group"),
    ("directory sticky and writable by all", lambda d: os.chmod(str(d), 0o1777), "state", "writable by others"),
]


@pytest.mark.parametrize("make,named,words", [c[1:] for c in UNTRUSTED], ids=[c[0] for c in UNTRUSTED])
def test_an_untrusted_file_or_directory_is_an_error_naming_it(state: Any, make: Callable[[Any], None], named: str,
                                                              words: str) -> None:
    make(state)
    with pytest.raises(NetnsError) as caught:
        trusted_files.read_trusted(str(state / "t.json"))
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert caught.value.obj.endswith(named), message


def test_an_untrusted_directory_is_an_error_even_without_the_file(state: Any) -> None:
    os.chmod(str(state), 0o777)
    with pytest.raises(NetnsError, match="writable by others"):
        trusted_files.read_trusted(str(state / "nothing.json"))


def test_a_symlinked_file_is_refused_not_followed(state: Any, tmp_path: Any) -> None:
    (tmp_path / "elsewhere.json").write_text("{}\n")
    os.symlink(str(tmp_path / "elsewhere.json"), str(state / "link.json"))
    with pytest.raises(NetnsError, match="is a symlink") as caught:
        trusted_files.read_trusted(str(state / "link.json"))
    assert caught.value.obj == str(state / "link.json")


def test_a_symlinked_directory_is_refused(state: Any, tmp_path: Any) -> None:
    os.symlink(str(state), str(tmp_path / "linked"))
    with pytest.raises(NetnsError, match="is a symlink") as caught:
        trusted_files.read_trusted(str(tmp_path / "linked" / "t.json"))
    assert caught.value.obj == str(tmp_path / "linked")


def test_a_fifo_is_refused_without_blocking(state: Any) -> None:
    os.mkfifo(str(state / "fifo.json"), 0o600)
    outcome: list = []

    def read() -> None:
        try:
            trusted_files.read_trusted(str(state / "fifo.json"))
        except NetnsError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert outcome and "is a FIFO" in outcome[0], outcome


def test_a_device_is_refused(tmp_path: Any) -> None:
    os.chmod(str(tmp_path), 0o700)
    os.mknod(str(tmp_path / "null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(NetnsError, match="is a character device"):
        trusted_files.read_trusted(str(tmp_path / "null"))


def test_a_directory_is_refused(state: Any) -> None:
    (state / "sub").mkdir(mode=0o700)
    with pytest.raises(NetnsError, match="is a directory"):
        trusted_files.read_trusted(str(state / "sub"))


def test_an_oversized_file_is_refused(state: Any) -> None:
    with open(str(state / "big.json"), "wb") as handle:
        handle.truncate(trusted_files.TRUSTED_FILE_LIMIT + 1)
    os.chmod(str(state / "big.json"), 0o600)
    with pytest.raises(NetnsError, match="larger than"):
        trusted_files.read_trusted(str(state / "big.json"))


@pytest.mark.parametrize("umask", [0o000, 0o077, 0o022])
def test_created_directories_are_0700_whatever_the_umask(tmp_path: Any, umask: int) -> None:
    old = os.umask(umask)
    try:
        trusted_files.private_directory(str(tmp_path / "a" / "b"))
        trusted_files.write_file_atomically(str(tmp_path / "c" / "d" / "f"), "x\n", 0o600)
    finally:
        os.umask(old)
    for directory in ("a", "a/b", "c", "c/d"):
        assert mode_of(tmp_path / directory) == 0o700, directory
    assert mode_of(tmp_path / "c" / "d" / "f") == 0o600


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_directories_of_another_mode_are_made_with_it_whatever_the_umask(tmp_path: Any, umask: int) -> None:
    old = os.umask(umask)
    try:
        trusted_files.ensure_directory(str(tmp_path / "etc" / "NAME"), 0o755)
        trusted_files.write_file_atomically(str(tmp_path / "etc" / "NAME" / "resolv.conf"), "x\n", 0o644, directory_mode=0o755)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "etc") == mode_of(tmp_path / "etc" / "NAME") == 0o755
    assert mode_of(tmp_path / "etc" / "NAME" / "resolv.conf") == 0o644


def test_an_existing_untrusted_directory_is_refused(tmp_path: Any) -> None:
    (tmp_path / "open").mkdir()
    os.chmod(str(tmp_path / "open"), 0o777)
    with pytest.raises(NetnsError, match="writable by others") as caught:
        trusted_files.private_directory(str(tmp_path / "open"))
    assert caught.value.obj == str(tmp_path / "open")
    with pytest.raises(NetnsError, match="writable by others"):
        trusted_files.write_file_atomically(str(tmp_path / "open" / "f"), "x\n", 0o600)
    assert os.listdir(str(tmp_path / "open")) == []
    os.chmod(str(tmp_path / "open"), 0o700)
    os.chown(str(tmp_path / "open"), NOBODY, -1)
    with pytest.raises(NetnsError, match="owned by uid 65534"):
        trusted_files.private_directory(str(tmp_path / "open"))


def test_a_symlinked_directory_is_never_written_through(tmp_path: Any) -> None:
    (tmp_path / "victim").mkdir(mode=0o700)
    os.symlink(str(tmp_path / "victim"), str(tmp_path / "state"))
    with pytest.raises(NetnsError, match="is a symlink"):
        trusted_files.private_directory(str(tmp_path / "state"))
    with pytest.raises(NetnsError, match="is a symlink"):
        trusted_files.write_file_atomically(str(tmp_path / "state" / "f"), "x\n", 0o600)
    assert os.listdir(str(tmp_path / "victim")) == []


def test_a_file_where_a_directory_belongs_is_refused(tmp_path: Any) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(NetnsError, match="not a directory") as caught:
        trusted_files.write_file_atomically(str(tmp_path / "state" / "f"), "x\n", 0o600)
    assert caught.value.obj == str(tmp_path / "state")


def test_a_symlink_at_the_target_is_replaced_not_followed(state: Any, tmp_path: Any) -> None:
    (tmp_path / "victim").write_text("keep\n")
    os.symlink(str(tmp_path / "victim"), str(state / "f"))
    trusted_files.write_file_atomically(str(state / "f"), "new\n", 0o600)
    assert (tmp_path / "victim").read_text() == "keep\n"
    assert not os.path.islink(str(state / "f")) and (state / "f").read_text() == "new\n"


def test_the_mode_is_set_on_the_descriptor_whatever_the_umask(state: Any) -> None:
    old = os.umask(0o777)
    try:
        trusted_files.write_file_atomically(str(state / "f"), "x\n", 0o644)
    finally:
        os.umask(old)
    assert mode_of(state / "f") == 0o644 and os.stat(str(state / "f")).st_uid == 0


def test_stale_temporaries_of_the_target_are_removed(state: Any, tmp_path: Any) -> None:
    """A killed run leaves NAME.tmp.PID behind; the next write removes every one of them (a symlink
    among them is removed, never followed), and nothing of other files."""
    (tmp_path / "victim").write_text("keep\n")
    (state / "f.tmp.12345").write_text("half")
    os.symlink(str(tmp_path / "victim"), str(state / ("f.tmp.%d" % os.getpid())))
    (state / "f.tmp.12345x").write_text("not ours")
    (state / "g.tmp.12345").write_text("another file's")
    (state / "f.tmp.1.owned.json").write_text("a topology named f.tmp.1")
    trusted_files.write_file_atomically(str(state / "f"), "x\n", 0o600)
    assert sorted(os.listdir(str(state))) == ["f", "f.tmp.1.owned.json", "f.tmp.12345x", "g.tmp.12345", "t.json"]
    assert (tmp_path / "victim").read_text() == "keep\n"


def test_remove_file_removes_only_a_trusted_regular_file_in_a_trusted_directory(state: Any, tmp_path: Any) -> None:
    trusted_files.remove_file(str(state / "t.json"))
    assert not (state / "t.json").exists()
    trusted_files.remove_file(str(state / "t.json"))  # already gone: nothing to do
    trusted_files.remove_file(str(tmp_path / "no-dir" / "t.json"))
    os.mkfifo(str(state / "fifo"))
    with pytest.raises(NetnsError, match="is a FIFO"):
        trusted_files.remove_file(str(state / "fifo"))
    (state / "t.json").write_text("")
    os.chown(str(state / "t.json"), NOBODY, -1)
    with pytest.raises(NetnsError, match="owned by uid 65534"):
        trusted_files.check_removable(str(state / "t.json"))
    with pytest.raises(NetnsError, match="owned by uid 65534"):
        trusted_files.remove_file(str(state / "t.json"))
    os.chown(str(state / "t.json"), 0, -1)
    trusted_files.check_removable(str(state / "t.json"))
    os.chmod(str(state), 0o777)
    with pytest.raises(NetnsError, match="writable by others"):
        trusted_files.remove_file(str(state / "t.json"))
    assert (state / "t.json").exists()


def test_read_regular_file_refuses_links_and_special_files_but_not_owners(tmp_path: Any) -> None:
    """What /etc/netns/NAME/resolv.conf is read with: no trust needed to read it, but never a FIFO,
    a device or a symlink (neither the file nor its directory)."""
    directory = tmp_path / "NAME"
    directory.mkdir()
    (directory / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    os.chown(str(directory / "resolv.conf"), NOBODY, -1)
    assert trusted_files.read_regular_file(str(directory / "resolv.conf")) == "nameserver 192.0.2.1\n"
    assert trusted_files.read_regular_file(str(directory / "other")) is None
    assert trusted_files.read_regular_file(str(tmp_path / "none" / "resolv.conf")) is None
    os.mkfifo(str(directory / "fifo"))
    with pytest.raises(NetnsError, match="is a FIFO"):
        trusted_files.read_regular_file(str(directory / "fifo"))
    os.symlink(str(directory), str(tmp_path / "LINK"))
    with pytest.raises(NetnsError, match="is a symlink"):
        trusted_files.read_regular_file(str(tmp_path / "LINK" / "resolv.conf"))
