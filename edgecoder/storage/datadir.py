"""The data directory: created private (0700), checked writable before anything goes in."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from edgecoder.errors import DataDirError

__all__ = ("atomic_write", "check_writable", "prepare_data_dir")

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
        what = (
            "is not writable" if probe == path else f"cannot be created ({probe} is not writable)"
        )
        raise DataDirError(f"data dir {path} {what}")


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
        raise DataDirError(f"data dir {path}: {exc.strerror or exc}") from None


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so a crash leaves either the old file or the new one.

    The file is created with ``mode`` (never wider), flushed to disk, renamed into
    place, and the directory entry is flushed too.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
