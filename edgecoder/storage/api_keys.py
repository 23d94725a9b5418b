"""API key records (table ``api_keys``): names, hashes, admin flag, revocation, and each
key's credit account: its budget (mc; NULL: unlimited) and what it has spent (mc)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from edgecoder.errors import BadRequestError

__all__ = (
    "ApiKeyRecord",
    "budget_of",
    "charge",
    "find_key",
    "insert_key",
    "list_keys",
    "revoke_key",
    "set_budget",
    "touch_key",
)


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """One API key as stored: never the key itself."""

    name: str
    key_hash: str
    admin: bool
    created_ms: int
    revoked_ms: int | None
    last_used_ms: int | None
    budget_mc: int | None = None
    """The most its requests may spend on peers' work, all told (None: no limit)."""
    spent_mc: int = 0
    """What its requests have spent on peers' work so far."""

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_ms is None


_COLUMNS = "name, key_hash, admin, created_ms, revoked_ms, last_used_ms, budget_mc, spent_mc"


def _record(row: tuple[Any, ...]) -> ApiKeyRecord:
    name, key_hash, admin, created, revoked, used, budget, spent = row
    return ApiKeyRecord(str(name), str(key_hash), bool(admin), int(created), revoked, used,
                        budget, int(spent))  # fmt: skip


def insert_key(
    conn: sqlite3.Connection, name: str, key_hash: str, admin: bool, now_ms: int
) -> None:
    """Store a new key.

    :raises BadRequestError: a key with that name exists (revoked names stay taken, so an
        account's history never changes hands).
    """
    try:
        conn.execute(
            "INSERT INTO api_keys (name, key_hash, admin, created_ms) VALUES (?, ?, ?, ?)",
            (name, key_hash, int(admin), now_ms),
        )
    except sqlite3.IntegrityError:
        raise BadRequestError(f"an API key named '{name}' already exists", "name") from None


def find_key(conn: sqlite3.Connection, key_hash: str) -> ApiKeyRecord | None:
    """The record with this hash, revoked or not."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?",  # noqa: S608
        (key_hash,),
    ).fetchone()
    return None if row is None else _record(row)


def list_keys(conn: sqlite3.Connection) -> list[ApiKeyRecord]:
    """Every key record, oldest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_ms, name").fetchall()  # noqa: S608
    return [_record(row) for row in rows]


def revoke_key(conn: sqlite3.Connection, name: str, now_ms: int) -> bool:
    """Revoke a key by name; False if no active key has that name."""
    cursor = conn.execute(
        "UPDATE api_keys SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL",
        (now_ms, name),
    )
    return cursor.rowcount == 1


def touch_key(conn: sqlite3.Connection, name: str, now_ms: int) -> None:
    """Record that a key was used."""
    conn.execute("UPDATE api_keys SET last_used_ms = ? WHERE name = ?", (now_ms, name))


def set_budget(conn: sqlite3.Connection, name: str, budget_mc: int | None) -> bool:
    """Give a key a budget (None: unlimited); False if no key has that name."""
    cursor = conn.execute("UPDATE api_keys SET budget_mc = ? WHERE name = ?", (budget_mc, name))
    return cursor.rowcount == 1


def budget_of(conn: sqlite3.Connection, name: str) -> tuple[int | None, int] | None:
    """A key's (budget, spent), or None when no key has that name."""
    row = conn.execute(
        "SELECT budget_mc, spent_mc FROM api_keys WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else (row[0], int(row[1]))


def charge(conn: sqlite3.Connection, name: str, amount_mc: int) -> None:
    """Add to what a key has spent (inside the caller's transaction: the ledger's payment)."""
    conn.execute("UPDATE api_keys SET spent_mc = spent_mc + ? WHERE name = ?", (amount_mc, name))
