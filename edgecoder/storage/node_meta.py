"""Node metadata in the database: which key owns it, the history of starts, and small
settings an operator changed at run time (``control.*`` keys)."""

from __future__ import annotations

import sqlite3

from edgecoder.errors import StorageError
from edgecoder.storage.transaction import transaction

__all__ = ("read_all", "register_start", "write")


def read_all(conn: sqlite3.Connection) -> dict[str, str]:
    """Every metadata key and value."""
    return dict(conn.execute("SELECT key, value FROM node_meta").fetchall())


def write(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Set one metadata value (never ``node_id``, which only :func:`register_start` sets)."""
    if key == "node_id":
        raise ValueError("node_id is bound once, by register_start")
    conn.execute(
        "INSERT INTO node_meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def register_start(
    conn: sqlite3.Connection, node_id: str, started_ms: int, version: str, extensions: bool
) -> int:
    """Bind the database to ``node_id`` on first use and append this start to its history.

    Both happen in one transaction.

    :raises StorageError: the database was created by a different node key (the key file
        was replaced, or the database copied from another node).
    :returns: how many starts the database has seen, this one included.
    """
    with transaction(conn):
        row = conn.execute("SELECT value FROM node_meta WHERE key = 'node_id'").fetchone()
        if row is None:
            conn.execute("INSERT INTO node_meta (key, value) VALUES ('node_id', ?)", (node_id,))
        elif row[0] != node_id:
            raise StorageError(
                f"the database belongs to node {row[0]}, but the node key is {node_id}: "
                "the key file was replaced or the data copied from another node"
            )
        conn.execute(
            "INSERT INTO node_starts (started_ms, version, extensions) VALUES (?, ?, ?)",
            (started_ms, version, int(extensions)),
        )
        count = int(conn.execute("SELECT COUNT(*) FROM node_starts").fetchone()[0])
    return count
