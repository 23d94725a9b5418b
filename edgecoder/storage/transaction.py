"""Explicit SQLite transactions that are never left open after a failure."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator

__all__ = ("rollback", "transaction")

log = logging.getLogger(__name__)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: all of the block's statements, or none of them.

    The commit is the acknowledgement: if it fails (a full disk), the error propagates and
    the transaction is rolled back, never left open.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if any; never raises."""
    # SQLite may already have rolled back by itself (it does for SQLITE_FULL and
    # SQLITE_IOERR); then there is nothing left to do, and ROLLBACK would only fail.
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("database rollback failed: %s", exc)
