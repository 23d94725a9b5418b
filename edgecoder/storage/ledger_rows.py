"""The ledger's rows: every chain this node holds (its own and its peers'), and vouches.

An entry row holds the body's fields, the hash and the signature; the body is rebuilt
from them exactly (:class:`~edgecoder.ledger.entries.Entry` has no other field), so what
is read back verifies as it did when written. Appends are plain inserts keyed by
(node, seq): a second entry with a taken seq is refused by the key, which is how a chain
that forks cannot be stored twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from edgecoder.ledger.entries import Entry, SignedEntry

__all__ = (
    "append_entries",
    "chain_heads",
    "entries_of",
    "entry_at",
    "recent_entries",
    "store_vouch",
    "vouches",
)

_COLUMNS = ("v", "node", "seq", "prev", "kind", "amount", "party", "ref", "total", "ts")
_SELECT = f"SELECT {', '.join(_COLUMNS)}, hash, sig FROM ledger_entries"  # noqa: S608


def _row(entry: SignedEntry) -> tuple[object, ...]:
    body = entry.entry
    return (*(getattr(body, c) for c in _COLUMNS), entry.hash.hex(), entry.sig.hex())


def _entry(row: tuple[object, ...]) -> SignedEntry:
    body = Entry(**dict(zip(_COLUMNS, row[: len(_COLUMNS)], strict=True)))  # type: ignore[arg-type]
    hash_hex, sig_hex = row[len(_COLUMNS)], row[len(_COLUMNS) + 1]
    assert isinstance(hash_hex, str)
    assert isinstance(sig_hex, str)
    return SignedEntry(body, bytes.fromhex(hash_hex), bytes.fromhex(sig_hex))


def append_entries(conn: sqlite3.Connection, entries: Iterable[SignedEntry]) -> None:
    """Insert entries (the caller's transaction makes several one write).

    :raises sqlite3.IntegrityError: an entry's (node, seq) is already held.
    """
    conn.executemany(
        f"INSERT INTO ledger_entries ({', '.join(_COLUMNS)}, hash, sig)"  # noqa: S608
        f" VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})",
        [_row(e) for e in entries],
    )


def entries_of(
    conn: sqlite3.Connection, node: str, after: int = 0, limit: int = -1
) -> list[SignedEntry]:
    """A chain's entries after ``after``, in order (``limit`` -1: all)."""
    rows = conn.execute(
        f"{_SELECT} WHERE node = ? AND seq > ? ORDER BY seq LIMIT ?", (node, after, limit)
    ).fetchall()
    return [_entry(r) for r in rows]


def entry_at(conn: sqlite3.Connection, node: str, seq: int) -> SignedEntry | None:
    """One entry, or None."""
    row = conn.execute(f"{_SELECT} WHERE node = ? AND seq = ?", (node, seq)).fetchone()
    return None if row is None else _entry(row)


def recent_entries(
    conn: sqlite3.Connection, node: str, limit: int, before: int | None = None
) -> list[SignedEntry]:
    """A chain's newest entries (below ``before`` when given), newest first."""
    below = before if before is not None else 2**62
    rows = conn.execute(
        f"{_SELECT} WHERE node = ? AND seq < ? ORDER BY seq DESC LIMIT ?", (node, below, limit)
    ).fetchall()
    return [_entry(r) for r in rows]


def chain_heads(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    """Every chain held: node → (last seq, its hash)."""
    rows = conn.execute(
        "SELECT node, seq, hash FROM ledger_entries AS e WHERE seq ="
        " (SELECT MAX(seq) FROM ledger_entries WHERE node = e.node)"
    ).fetchall()
    return {node: (seq, hash_hex) for node, seq, hash_hex in rows}


def store_vouch(
    conn: sqlite3.Connection, vouch_hash: str, node: str, voucher: str, document: dict[str, Any],
    now_ms: int,
) -> None:  # fmt: skip
    """Keep a vouch (one this node issued, claimed or saw); again: nothing."""
    conn.execute(
        "INSERT INTO ledger_vouches (hash, node, voucher, body, sig, stored_ms)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING",
        (vouch_hash, node, voucher, json.dumps(document["body"], sort_keys=True),
         document["sig"], now_ms),
    )  # fmt: skip


def vouches(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every vouch kept, as ``{"body", "sig"}`` documents, oldest first."""
    rows = conn.execute("SELECT body, sig FROM ledger_vouches ORDER BY stored_ms, hash")
    return [{"body": json.loads(body), "sig": sig} for body, sig in rows.fetchall()]
