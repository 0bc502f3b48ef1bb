# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import the collection's files from Ansible's zip payload: compiled at most once, and not at all
when the host keeps their bytecode from an earlier run.

Ansible runs a module by putting its code, and every module_utils file it imports, into a zip that
Python imports from (zipimport). The zip holds no bytecode, so each file is compiled on every run,
and CPython's zipimport compiles it twice: once to find it (``find_spec`` asks ``get_filename``,
which compiles to learn where the code would come from) and once to run it. For the topology
module that is ~0.2 MB of the collection's source, measured ~30 ms (twice) of every run.

The finder below answers ``find_spec`` for the payload's collection packages from the zip's
listing alone, and its loader keeps what it compiled in a bytecode cache on the host, as Python's
own ``__pycache__`` does for files on disk: one file per module, holding the hash of the source it
was compiled from (PEP 552's checked hash-based format), so a changed collection is compiled anew.

Where the cache is: ``LINUXNET_NETNS_BYTECODE_CACHE`` in the module's environment, a directory or
``off``; without it none when Python writes no bytecode (``PYTHONDONTWRITEBYTECODE``, ``-B``),
``$PYTHONPYCACHEPREFIX/linuxnet-netns`` when Python has a cache prefix, else /var/cache/linuxnet-netns/bytecode for root and
``$XDG_CACHE_HOME`` (~/.cache)/linuxnet-netns/bytecode for others. It is used only when it is a
directory of the user the module runs as, closed to everyone else (0700); files are opened without
following symbolic links and must belong to that user. Deleting it at any time is safe.

Every module calls ``install()`` before importing the rest of the collection (Ansible's own
module_utils are loaded by its wrapper before any module code). Outside a zip payload (tests, the
restore program, an exploded module) it installs nothing.
"""

from __future__ import annotations

import _imp  # _fix_co_filename: what importlib does to a cached code object so tracebacks name the file now
import importlib.machinery
import importlib.util
import marshal
import os
import stat
import sys
import zipimport
from types import CodeType, ModuleType
from typing import Any, Optional, Sequence

PACKAGES = ("ansible_collections.",)
CACHE_VARIABLE = "LINUXNET_NETNS_BYTECODE_CACHE"
CACHE_NAME = "linuxnet-netns"
CHECKED_HASH = 0b11  # PEP 552 flags: the header holds the source's hash, and a reader must compare it
HEADER_SIZE = 16  # magic, flags, 8-byte source hash


def cache_directory() -> Optional[str]:
    """Where compiled files are kept for the user running the module, or None for no cache."""
    chosen = os.environ.get(CACHE_VARIABLE, "")
    if chosen == "off" or sys.implementation.cache_tag is None:
        return None
    if chosen:
        return chosen  # named for this cache: used also where Python writes no bytecode of its own
    if sys.dont_write_bytecode:
        return None
    if sys.pycache_prefix:
        return os.path.join(sys.pycache_prefix, CACHE_NAME)
    if os.geteuid() == 0:
        return os.path.join("/var/cache", CACHE_NAME, "bytecode")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, CACHE_NAME, "bytecode")


class BytecodeCache:
    """Code objects of the collection's modules, by module name, checked against their source's hash."""

    def __init__(self, directory: Optional[str]) -> None:
        self.directory = directory
        self._fd: Optional[int] = None
        self._opened = False

    def load(self, name: str, source: bytes, origin: str) -> Optional[CodeType]:
        """The cached code of NAME if it was compiled from exactly SOURCE, named ORIGIN for tracebacks."""
        data = self._read(_file_name(name))
        if data is None or data[:HEADER_SIZE] != _header(source):
            return None
        try:
            code = marshal.loads(data[HEADER_SIZE:])
        except (EOFError, ValueError, TypeError):
            return None
        if not isinstance(code, CodeType):
            return None
        _imp._fix_co_filename(code, origin)
        return code

    def store(self, name: str, source: bytes, code: CodeType) -> None:
        """Keep CODE for the next run; written whole under another name, then renamed into place."""
        directory = self._directory_fd()
        if directory is None:
            return
        final = _file_name(name)
        partial = "%s.%d.tmp" % (final, os.getpid())
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=directory)
            with os.fdopen(fd, "wb") as handle:
                handle.write(_header(source) + marshal.dumps(code))
            os.replace(partial, final, src_dir_fd=directory, dst_dir_fd=directory)
        except OSError:
            try:
                os.unlink(partial, dir_fd=directory)
            except OSError:
                pass

    def _read(self, file_name: str) -> Optional[bytes]:
        directory = self._directory_fd()
        if directory is None:
            return None
        try:
            fd = os.open(file_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            found = os.fstat(handle.fileno())
            if not stat.S_ISREG(found.st_mode) or found.st_uid != os.geteuid():
                return None
            return handle.read()

    def _directory_fd(self) -> Optional[int]:
        """The cache directory, opened once; None when there is none or it is not this user's alone."""
        if not self._opened:
            self._opened = True
            self._fd = _open_private_directory(self.directory) if self.directory else None
        return self._fd


def _open_private_directory(path: str) -> Optional[int]:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    found = os.fstat(fd)
    if found.st_uid != os.geteuid() or found.st_mode & 0o077:
        os.close(fd)  # someone else could write code there for this user to run
        return None
    return fd


def _file_name(name: str) -> str:
    optimized = ".opt-%d" % sys.flags.optimize if sys.flags.optimize else ""
    return "%s.%s%s.pyc" % (name, sys.implementation.cache_tag, optimized)


def _header(source: bytes) -> bytes:
    return importlib.util.MAGIC_NUMBER + CHECKED_HASH.to_bytes(4, "little") + importlib.util.source_hash(source)


class PayloadLoader:
    """Loads one module of the payload: its source from the zip, its code from the cache or compiled."""

    def __init__(self, importer: zipimport.zipimporter, origin: str, cache: BytecodeCache) -> None:
        self.importer = importer
        self.origin = origin
        self.cache = cache

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        return None  # the usual module object

    def exec_module(self, module: ModuleType) -> None:
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, fullname: str) -> CodeType:
        source = self.importer.get_data(self.origin)
        code = self.cache.load(fullname, source, self.origin)
        if code is None:
            code = compile(source, self.origin, "exec", dont_inherit=True)
            self.cache.store(fullname, source, code)
        return code

    def get_source(self, fullname: str) -> Optional[str]:
        return self.importer.get_source(fullname)  # for tracebacks (linecache)

    def get_filename(self, fullname: str) -> str:
        return self.origin

    def is_package(self, fullname: str) -> bool:
        return self.importer.is_package(fullname)

    def get_resource_reader(self, fullname: str) -> Any:
        return self.importer.get_resource_reader(fullname)


class OneCompileFinder:
    """``find_spec`` for modules of the payload's packages, without compiling them."""

    cache = BytecodeCache(None)

    @classmethod
    def find_spec(cls, fullname: str, path: Optional[Sequence[str]] = None, target: Any = None) -> Any:
        if not path or not fullname.startswith(PACKAGES):
            return None
        for entry in path:
            try:
                importer = zipimport.zipimporter(entry)
            except zipimport.ZipImportError:
                return None  # a directory before any zip: the usual finders decide
            try:
                is_package = importer.is_package(fullname)  # from the zip's listing: nothing compiled
            except zipimport.ZipImportError:
                continue  # not in this part of the zip
            return _spec(fullname, entry, importer, is_package, cls.cache)
        return None


def _spec(fullname: str, entry: str, importer: zipimport.zipimporter, is_package: bool,
          cache: BytecodeCache) -> importlib.machinery.ModuleSpec:
    """The spec zipimport's own ``find_spec`` would give, with a loader that compiles at most once."""
    tail = os.path.join(entry, fullname.rpartition(".")[2])
    origin = os.path.join(tail, "__init__.py") if is_package else tail + ".py"
    spec = importlib.machinery.ModuleSpec(fullname, PayloadLoader(importer, origin, cache), origin=origin,
                                          is_package=is_package)
    spec.has_location = True  # __file__ as zipimport would set it
    if is_package:
        spec.submodule_search_locations = [tail]
    return spec


def install() -> None:
    """Put the finder first, when this module itself was loaded from a zip payload."""
    if isinstance(globals().get("__loader__"), zipimport.zipimporter) and OneCompileFinder not in sys.meta_path:
        OneCompileFinder.cache = BytecodeCache(cache_directory())
        sys.meta_path.insert(0, OneCompileFinder)
