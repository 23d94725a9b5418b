"""Turning OS and SQLite storage failures into typed errors that name the path and the problem.

A full disk, a read-only data dir and a failing disk each get their own class (see
:mod:`edgecoder.errors`) and one readable line, for instance ``data dir /x is full (No
space left on device): writing /x/node.key failed``. When the error code alone is vague
(SQLite reports a failed ``-shm`` allocation as an I/O error), the file system itself is
asked whether it is full or mounted read-only.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from edgecoder.errors import DiskFullError, ReadOnlyStorageError, StorageError, StorageIOError

__all__ = ("is_fault", "os_fault", "sqlite_fault")

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_IO_ERRNOS = frozenset({errno.EIO})

# Primary result codes (the low byte of an extended code), from sqlite3.h.
_SQLITE_PERM = 3
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14


def _kind_of_file_system(directory: Path) -> type[StorageError] | None:
    """DiskFullError or ReadOnlyStorageError when the file system says so, else None."""
    probe = directory
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        info = os.statvfs(probe)
    except OSError:
        return None
    if info.f_flag & os.ST_RDONLY:
        return ReadOnlyStorageError
    if info.f_bavail == 0 or (info.f_files and info.f_favail == 0):
        return DiskFullError
    return None


def _describe(kind: type[StorageError], directory: Path, reason: str) -> str:
    if kind is DiskFullError:
        return f"data dir {directory} is full ({reason})"
    if kind is ReadOnlyStorageError:
        read_only = "read-only" in reason.lower() or "readonly" in reason.lower()
        if not read_only:
            read_only = _kind_of_file_system(directory) is ReadOnlyStorageError
        state = "read-only" if read_only else "not writable"
        return f"data dir {directory} is {state} ({reason})"
    if kind is StorageIOError:
        return f"I/O error in data dir {directory} ({reason})"
    return f"data dir {directory}: {reason}"


def is_fault(exc: OSError) -> bool:
    """Whether ``exc`` says the storage itself failed: full, read-only, or an I/O error."""
    return exc.errno in _FULL_ERRNOS or exc.errno in _IO_ERRNOS or exc.errno == errno.EROFS


def os_fault(exc: OSError, path: Path, doing: str) -> StorageError:
    """The typed error for an OS-level failure while ``doing`` (e.g. "writing") ``path``.

    :param exc: the failure, as raised by the OS call.
    :param path: the file that was being read or written; its parent is taken as the data dir.
    :param doing: what was being done to it, as a gerund: "writing", "reading", "removing".
    :returns: a :class:`DiskFullError`, :class:`ReadOnlyStorageError`,
        :class:`StorageIOError`, or a plain :class:`StorageError` for anything else.
    """
    directory = path.parent
    kind: type[StorageError]
    if exc.errno in _FULL_ERRNOS:
        kind = DiskFullError
    elif exc.errno == errno.EROFS:
        kind = ReadOnlyStorageError
    elif exc.errno in _READ_ONLY_ERRNOS:
        kind = _kind_of_file_system(directory) or ReadOnlyStorageError
    elif exc.errno in _IO_ERRNOS:
        kind = _kind_of_file_system(directory) or StorageIOError
    else:
        kind = _kind_of_file_system(directory) or StorageError
    reason = exc.strerror or str(exc)
    return kind(f"{_describe(kind, directory, reason)}: {doing} {path} failed")


def sqlite_fault(exc: sqlite3.Error, path: Path, doing: str) -> StorageError | None:
    """The typed error for a storage fault SQLite reported on the database at ``path``.

    :param exc: the failure, as raised by :mod:`sqlite3`.
    :param path: the database file; its parent is taken as the data dir.
    :param doing: what was being done, as a phrase: "a write to", "opening".
    :returns: a :class:`DiskFullError`, :class:`ReadOnlyStorageError` or
        :class:`StorageIOError`, or None when the error is not a storage fault (a
        constraint, a syntax error, a corrupt file...).
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    kind: type[StorageError] | None
    if primary == _SQLITE_FULL:
        kind = DiskFullError
    elif primary in (_SQLITE_READONLY, _SQLITE_PERM):
        kind = _kind_of_file_system(path.parent) or ReadOnlyStorageError
    elif primary == _SQLITE_IOERR:
        kind = _kind_of_file_system(path.parent) or StorageIOError
    elif primary == _SQLITE_CANTOPEN:
        # Also a missing directory or a bad path: a fault only if the file system says so.
        kind = _kind_of_file_system(path.parent)
        if kind is None:
            return None
    else:
        return None
    return kind(f"{_describe(kind, path.parent, str(exc))}: {doing} {path} failed")
