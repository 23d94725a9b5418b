"""The node's one SQLite database, used only from its own worker thread.

SQLite calls block, so every call goes through :meth:`Database.run`, which hands a
function to a single dedicated thread that owns the connection: the event loop never
waits on disk, and statements never interleave across threads. WAL journaling,
``synchronous=FULL`` (a commit is on disk when it returns), foreign keys on. Storage
faults come out as :class:`~edgecoder.errors.StorageError` subclasses that name the
path and the problem, never as raw :mod:`sqlite3` or :class:`OSError` exceptions.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from edgecoder.errors import StorageError
from edgecoder.storage.faults import os_fault, sqlite_fault
from edgecoder.storage.migrations import apply_migrations
from edgecoder.storage.transaction import rollback, transaction

__all__ = ("DB_FILE", "Database", "transaction")

log = logging.getLogger(__name__)

DB_FILE = "edgecoder.db"
T = TypeVar("T")


class Database:
    """An open node database. Create with :meth:`open`; finish with :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._executor = executor

    @classmethod
    async def open(cls, data_dir: Path) -> Database:
        """Open (creating if needed) and migrate the database in ``data_dir``.

        :raises DiskFullError: there is no room to create or migrate it.
        :raises ReadOnlyStorageError: it, or its directory, cannot be written.
        :raises StorageError: it cannot be opened, is corrupt, or is newer than this program.
        """
        path = data_dir / DB_FILE
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgecoder-db")
        loop = asyncio.get_running_loop()
        existed = await loop.run_in_executor(executor, path.exists)
        try:
            conn = await loop.run_in_executor(executor, _connect, path)
        except BaseException:
            if not existed:
                # A database this call created but could not set up (a full disk) is
                # removed with its companions, not left half-made for the next start.
                await loop.run_in_executor(executor, _remove_new_database, path)
            executor.shutdown(wait=False)
            raise
        return cls(path, conn, executor)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the database thread and return its result.

        A write ``fn`` makes is acknowledged only by returning: statements commit on their
        own or inside :func:`transaction`, and a commit that fails raises here. After any
        failure an open transaction is rolled back, so the next call starts clean (a write
        refused for a full disk succeeds once space is back).

        :raises DiskFullError: the file system under the database is full.
        :raises ReadOnlyStorageError: the database or its directory cannot be written.
        :raises StorageIOError: the disk reported an I/O error.
        :raises StorageError: the database is closed, or SQLite failed otherwise (the
            :mod:`sqlite3` exception is the ``__cause__``).
        """
        conn = self._conn
        if conn is None:
            raise StorageError("the database is closed")
        path = self.path

        def call() -> T:
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                rollback(conn)
                fault = sqlite_fault(exc, path, "a write to" if _writing(exc) else "using")
                raise (fault or StorageError(f"database error: {exc}")) from exc
            except OSError as exc:
                rollback(conn)
                raise os_fault(exc, path, "using") from exc
            except BaseException:
                rollback(conn)
                raise

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        """Checkpoint and close the database; later calls to :meth:`run` fail.

        A checkpoint that fails (the disk is full) loses nothing: the write-ahead log
        stays beside the database and SQLite applies it on the next open.

        :raises StorageError: the connection could not be closed.
        """
        conn, self._conn = self._conn, None
        if conn is None:
            return
        path = self.path

        def finish() -> None:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                fault = sqlite_fault(exc, path, "checkpointing")
                log.warning(
                    "%s; closing the database without a checkpoint (its log is applied on "
                    "the next open)",
                    fault or f"checkpointing database {path} failed: {exc}",
                )
            try:
                conn.close()
            except sqlite3.Error as exc:
                fault = sqlite_fault(exc, path, "closing")
                raise (fault or StorageError(f"closing database {path}: {exc}")) from exc
            log.info("database %s closed", path)

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, finish)
        finally:
            self._executor.shutdown(wait=True)


def _writing(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) or 0
    return code & 0xFF in (_SQLITE_FULL, _SQLITE_READONLY)


_SQLITE_READONLY = 8
_SQLITE_FULL = 13


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    except sqlite3.Error as exc:
        raise _open_error(exc, path) from None
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        path.chmod(0o600)
        applied = apply_migrations(conn)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _open_error(exc, path) from None
        if isinstance(exc, OSError):
            raise os_fault(exc, path, "opening") from None
        raise
    if applied:
        log.info("database %s migrated to schema version %d", path, applied[-1])
    return conn


def _open_error(exc: sqlite3.Error, path: Path) -> StorageError:
    return sqlite_fault(exc, path, "opening") or StorageError(f"cannot open database {path}: {exc}")


def _remove_new_database(path: Path) -> None:
    for name in (path.name, *(path.name + s for s in ("-wal", "-shm", "-journal"))):
        try:
            if (path.parent / name).exists():
                (path.parent / name).unlink()
        except OSError as exc:
            log.warning("could not remove %s: %s", path.parent / name, exc.strerror)
