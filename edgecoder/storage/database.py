"""The node's one SQLite database, used only from its own worker thread.

SQLite calls block, so every call goes through :meth:`Database.run`, which hands a
function to a single dedicated thread that owns the connection: the event loop never
waits on disk, and statements never interleave across threads. WAL journaling,
``synchronous=FULL``, foreign keys on.
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
from edgecoder.storage.migrations import apply_migrations

__all__ = ("DB_FILE", "Database")

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

        :raises StorageError: it cannot be opened, is corrupt, or is newer than this program.
        """
        path = data_dir / DB_FILE
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgecoder-db")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, conn, executor)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the database thread and return its result.

        :raises StorageError: the database is closed, or SQLite failed.
        """
        conn = self._conn
        if conn is None:
            raise StorageError("the database is closed")

        def call() -> T:
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        """Checkpoint and close the database; later calls to :meth:`run` fail."""
        conn, self._conn = self._conn, None
        if conn is None:
            return

        def finish() -> None:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, finish)
        finally:
            self._executor.shutdown(wait=True)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
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
            raise StorageError(f"cannot open database {path}: {exc}") from None
        raise
    if applied:
        log.info("database %s migrated to schema version %d", path, applied[-1])
    return conn
