"""Versioned schema of the node database; ``PRAGMA user_version`` records the version applied.

Append a migration to :data:`MIGRATIONS` for every change; never edit one that shipped.
Each runs in one transaction with the version bump, so a crash leaves the old version or
the new one, never half of a migration.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edgecoder.errors import StorageError
from edgecoder.storage.transaction import transaction

__all__ = ("MIGRATIONS", "Migration", "apply_migrations", "schema_version")


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: its version number, what it does, and its SQL."""

    version: int
    summary: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        summary="node metadata: identity binding and start history",
        sql="""
        CREATE TABLE node_meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT;
        CREATE TABLE node_starts (
            id         INTEGER PRIMARY KEY,
            started_ms INTEGER NOT NULL,
            version    TEXT NOT NULL,
            extensions INTEGER NOT NULL
        ) STRICT;
        """,
    ),
    Migration(
        version=2,
        summary="model registry for the embedded backend",
        sql="""
        CREATE TABLE models (
            name           TEXT PRIMARY KEY,
            file           TEXT NOT NULL,
            sha256         TEXT NOT NULL,
            size_bytes     INTEGER NOT NULL,
            architecture   TEXT NOT NULL,
            context_length INTEGER NOT NULL,
            parameter_size TEXT NOT NULL,
            quantization   TEXT NOT NULL,
            chat_template  TEXT NOT NULL,
            fim_tokens     TEXT NOT NULL,
            added_ms       INTEGER NOT NULL
        ) STRICT;
        """,
    ),
    Migration(
        version=3,
        summary="API keys (hashed) and the accounts they map to",
        sql="""
        CREATE TABLE api_keys (
            name         TEXT PRIMARY KEY,
            key_hash     TEXT NOT NULL UNIQUE,
            admin        INTEGER NOT NULL,
            created_ms   INTEGER NOT NULL,
            revoked_ms   INTEGER,
            last_used_ms INTEGER
        ) STRICT;
        """,
    ),
    Migration(
        version=4,
        summary="mesh tasks: those this node offered, those it ran for peers, their receipts",
        sql="""
        CREATE TABLE tasks (
            task_id        TEXT PRIMARY KEY,
            kind           TEXT NOT NULL,
            model          TEXT NOT NULL,
            prompt_est     INTEGER NOT NULL,
            max_tokens     INTEGER NOT NULL,
            state          TEXT NOT NULL,
            worker         TEXT,
            attempts       INTEGER NOT NULL,
            claims         INTEGER NOT NULL,
            output_tokens  INTEGER NOT NULL,
            created_ms     INTEGER NOT NULL,
            first_token_ms INTEGER,
            finished_ms    INTEGER,
            error          TEXT
        ) STRICT;
        CREATE INDEX tasks_created ON tasks (created_ms);
        CREATE TABLE task_runs (
            task_id       TEXT NOT NULL,
            attempt       INTEGER NOT NULL,
            origin        TEXT NOT NULL,
            model         TEXT NOT NULL,
            state         TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            started_ms    INTEGER NOT NULL,
            finished_ms   INTEGER,
            PRIMARY KEY (task_id, attempt)
        ) STRICT;
        CREATE INDEX task_runs_started ON task_runs (started_ms);
        CREATE TABLE receipts (
            task_id    TEXT NOT NULL,
            attempt    INTEGER NOT NULL,
            role       TEXT NOT NULL,
            body       TEXT NOT NULL,
            origin_sig TEXT NOT NULL,
            worker_sig TEXT NOT NULL,
            stored_ms  INTEGER NOT NULL,
            PRIMARY KEY (task_id, attempt)
        ) STRICT;
        """,
    ),
    Migration(
        version=5,
        summary="the credit ledger: every chain this node holds, vouches, API key budgets",
        sql="""
        CREATE TABLE ledger_entries (
            node   TEXT NOT NULL,
            seq    INTEGER NOT NULL,
            hash   TEXT NOT NULL,
            prev   TEXT NOT NULL,
            kind   TEXT NOT NULL,
            amount INTEGER NOT NULL,
            party  TEXT NOT NULL,
            ref    TEXT NOT NULL,
            total  INTEGER NOT NULL,
            ts     INTEGER NOT NULL,
            v      INTEGER NOT NULL,
            sig    TEXT NOT NULL,
            PRIMARY KEY (node, seq)
        ) STRICT;
        CREATE INDEX ledger_entries_ref ON ledger_entries (ref);
        CREATE TABLE ledger_vouches (
            hash      TEXT PRIMARY KEY,
            node      TEXT NOT NULL,
            voucher   TEXT NOT NULL,
            body      TEXT NOT NULL,
            sig       TEXT NOT NULL,
            stored_ms INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX ledger_vouches_node ON ledger_vouches (node);
        ALTER TABLE api_keys ADD COLUMN budget_mc INTEGER;
        ALTER TABLE api_keys ADD COLUMN spent_mc INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    Migration(
        version=6,
        summary="receipts a worker refused for good (never sent again), and the waiting ones",
        sql="""
        ALTER TABLE receipts ADD COLUMN refused TEXT NOT NULL DEFAULT '';
        CREATE INDEX receipts_waiting ON receipts (stored_ms) WHERE worker_sig = '';
        """,
    ),
)


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the schema version recorded in the database."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def apply_migrations(conn: sqlite3.Connection) -> list[int]:
    """Bring the schema up to date; return the versions applied now.

    :raises StorageError: the database is newer than this program knows.
    """
    current = schema_version(conn)
    latest = MIGRATIONS[-1].version
    if current > latest:
        raise StorageError(
            f"database schema version {current} is newer than this EdgeCoder knows ({latest}); "
            "upgrade EdgeCoder"
        )
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        # executescript would commit on its own; run each statement inside one transaction.
        with transaction(conn):
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
        applied.append(migration.version)
    return applied


def _statements(sql: str) -> list[str]:
    parts, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            parts.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        parts.append(buffer.strip())
    return parts
