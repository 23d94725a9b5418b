"""The data directory: created private (0700), checked writable before anything goes in."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgecoder.errors import DataDirError
from edgecoder.storage.faults import is_fault, os_fault

__all__ = (
    "DataDirSnapshot",
    "atomic_file",
    "atomic_write",
    "check_writable",
    "prepare_data_dir",
    "remove_file",
    "snapshot_data_dir",
)

log = logging.getLogger(__name__)


def check_writable(path: Path) -> None:
    """Refuse a data directory that cannot be created or written, without creating it.

    :raises DataDirError: ``path`` (or the nearest existing parent, for a new directory)
        is not a writable directory.
    """
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise DataDirError(f"data dir {path}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        state = "is read-only (Read-only file system)" if _read_only(probe) else "is not writable"
        what = state if probe == path else f"cannot be created: {probe} {state}"
        raise DataDirError(f"data dir {path} {what}")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def prepare_data_dir(path: Path) -> None:
    """Create the data directory with mode 0700, or tighten an existing one to 0700.

    :raises DataDirError: it cannot be created, is not a directory, or is not writable.
    """
    check_writable(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("data dir %s had mode %o; tightening it to 0700", path, mode)
            path.chmod(0o700)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataDirError(f"data dir {path} is full ({reason})") from None
        if exc.errno == errno.EROFS:
            raise DataDirError(f"data dir {path} is read-only ({reason})") from None
        raise DataDirError(f"data dir {path}: {reason}") from None


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so a crash or a full disk leaves the old file or the new one.

    The data goes to a temporary file created with ``mode`` (never wider), flushed to
    disk, renamed into place, and the directory entry is flushed too. On any failure the
    temporary file is removed and ``path`` is as it was.

    :raises DiskFullError: the file system is full.
    :raises ReadOnlyStorageError: the directory is read-only or not writable.
    :raises StorageIOError: the disk reported an I/O error.
    :raises StorageError: any other OS failure, with the path and the OS's reason.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise os_fault(exc, path, "writing") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError as cleanup:
            log.warning("could not remove the temporary file %s: %s", tmp, cleanup.strerror)
        if isinstance(exc, OSError):
            raise os_fault(exc, path, "writing") from exc
        raise
    try:
        _fsync_dir(path.parent)
    except OSError as exc:
        raise os_fault(exc, path, "writing") from exc


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` for writers that need a file name (a copy, a link).

    The block writes the file at the yielded path. When it ends normally, the file is
    flushed to disk, renamed to ``path`` and the directory flushed; when it fails, the
    temporary file is removed and ``path`` is untouched. A full, read-only or failing
    file system raises the typed error naming ``path``; any other error is re-raised as is.

    :raises DiskFullError, ReadOnlyStorageError, StorageIOError: as :func:`atomic_write`.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise os_fault(exc, path, "writing") from exc
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError as cleanup:
            log.warning("could not remove the temporary file %s: %s", tmp, cleanup.strerror)
        if isinstance(exc, OSError) and is_fault(exc):
            raise os_fault(exc, path, "writing") from exc
        raise


def remove_file(path: Path) -> None:
    """Remove ``path`` (if it exists) and flush the directory, so it stays gone after a crash.

    :raises StorageError: as :func:`atomic_write` does.
    """
    try:
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise os_fault(exc, path, "removing") from exc


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# SQLite's companions of a database file: removed only together with the database, since
# a write-ahead log left by a close that could not checkpoint holds committed data.
_SIDECARS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True, slots=True)
class DataDirSnapshot:
    """What existed of a data dir before a start, so a failed start can remove what it added.

    Take it with :func:`snapshot_data_dir` before the start writes anything.
    """

    path: Path
    created_root: Path | None
    """The outermost directory that did not exist yet (the data dir or one of its parents)."""
    entries: frozenset[str]
    """Names in the data dir at the time (empty when it did not exist)."""

    def undo(self) -> list[Path]:
        """Remove what was created since the snapshot, and only that; never raises.

        A new data dir (and any parents made for it) goes as a whole; in a data dir that
        existed, only entries that were not there go, and SQLite's ``-wal``/``-shm`` files
        only with a database that is new too.

        :returns: what was removed.
        """
        removed: list[Path] = []
        try:
            if self.created_root is not None:
                if self.created_root.exists():
                    shutil.rmtree(self.created_root)
                    removed.append(self.created_root)
                return removed
            if not self.path.is_dir():  # not a directory: the start wrote nothing in it
                return removed
            added = set(os.listdir(self.path)) - self.entries
        except OSError as exc:
            log.warning("could not undo the failed start in %s: %s", self.path, exc)
            return removed
        for name in sorted(added):
            base = next((name[: -len(s)] for s in _SIDECARS if name.endswith(s)), None)
            if base is not None and base in self.entries:
                continue
            target = self.path / name
            try:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
                removed.append(target)
            except OSError as exc:
                log.warning("could not remove %s after the failed start: %s", target, exc)
        return removed


def snapshot_data_dir(path: Path) -> DataDirSnapshot:
    """Record what exists of the data dir ``path`` now (see :class:`DataDirSnapshot`).

    :raises DataDirError: ``path`` exists but cannot be listed.
    """
    created_root = None
    probe = path
    while not probe.exists() and probe.parent != probe:
        created_root = probe
        probe = probe.parent
    entries: frozenset[str] = frozenset()
    if created_root is None and path.is_dir():
        try:
            entries = frozenset(os.listdir(path))
        except OSError as exc:
            raise DataDirError(f"data dir {path}: {exc.strerror or exc}") from None
    return DataDirSnapshot(path, created_root, entries)
