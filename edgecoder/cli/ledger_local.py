"""This node's ledger read straight from its database, for when no agent answers.

``edgecoder credits`` and ``edgecoder credits verify`` ask the running agent when they
have an admin key; otherwise (or when nothing answers) they read the database themselves
— SQLite's WAL lets them read beside a running agent too — and answer with the same
documents as ``GET /admin/ledger`` and ``GET /admin/ledger/verify``. Offline, only this
node's own key is known, so peers' chains are checked for links and rules, not
signatures; the holds shown are those the last run left open (its next start releases
them).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from edgecoder.config import Config
from edgecoder.errors import EdgeCoderError, IdentityError, LedgerError
from edgecoder.ledger.economy import PINNED, VouchBook
from edgecoder.ledger.verification import ChainReport, read_chains, verify_chains
from edgecoder.ledger.vouches import parse_vouch
from edgecoder.storage import ledger_rows, node_meta
from edgecoder.storage.database import DB_FILE, Database
from edgecoder.storage.keystore import KEY_FILE, PublicIdentity, read_public

__all__ = ("local_ledger", "local_verify")


def local_ledger(config: Config, limit: int) -> dict[str, Any]:
    """``GET /admin/ledger``'s document, from the database (plus ``"running": false``).

    :raises EdgeCoderError: no node key or no database in the data dir.
    """
    document, _ = asyncio.run(_read(config, limit))
    return document


def local_verify(config: Config) -> dict[str, Any]:
    """``GET /admin/ledger/verify``'s document, from the database.

    :raises EdgeCoderError: no node key or no database in the data dir.
    """
    _, document = asyncio.run(_read(config, 0))
    return document


async def _read(config: Config, limit: int) -> tuple[dict[str, Any], dict[str, Any]]:
    data_dir = config.node.data_dir
    me = _public(config)
    if not await asyncio.to_thread((data_dir / DB_FILE).exists):
        raise EdgeCoderError(f"no database in {data_dir}; start the agent once to create it")
    database = await Database.open(data_dir)
    try:
        meta, chains, entries, vouches = await database.run(lambda c: _everything(c, me, limit))
    finally:
        await database.close()
    book = VouchBook(config.node.network)
    book.network_key = meta.get(PINNED, "")
    for document in vouches:
        try:
            book.add(parse_vouch(document))
        except LedgerError:
            continue  # a malformed vouch grants nothing; the rules say so where it matters
    keys = {me.node_id: me.public_key}
    reports = await asyncio.to_thread(verify_chains, chains, me.node_id, keys.get, book.lookup)
    own = reports[0]
    return _view(me.node_id, book.network_key, own, entries), _verdict(me.node_id, reports)


def _public(config: Config) -> PublicIdentity:
    data_dir = config.node.data_dir
    try:
        return read_public(data_dir)
    except FileNotFoundError:
        raise IdentityError(
            f"no node key in {data_dir} ({KEY_FILE} is missing); start the agent once to create it"
        ) from None


def _everything(
    conn: sqlite3.Connection, me: PublicIdentity, limit: int
) -> tuple[dict[str, str], dict[str, Any], list[Any], list[dict[str, Any]]]:
    # One read transaction: the chain, its newest entries and the vouches agree.
    conn.execute("BEGIN")
    try:
        meta = node_meta.read_all(conn)
        chains = read_chains(conn)
        entries = ledger_rows.recent_entries(conn, me.node_id, limit) if limit else []
        return meta, chains, entries, ledger_rows.vouches(conn)
    finally:
        conn.execute("COMMIT")


def _view(node: str, network_key: str, own: ChainReport, entries: list[Any]) -> dict[str, Any]:
    return {
        "node_id": node,
        "network_key": network_key,
        "balance": own.balance,
        "held": own.held,
        "available": own.available,
        "allowance": own.allowance,
        "head": {"seq": own.seq, "hash": own.head},
        "verified": own.verified,
        "entries": [e.as_json() for e in entries],
        "running": False,
    }


def _verdict(node: str, reports: list[ChainReport]) -> dict[str, Any]:
    return {"node_id": node, "verified": all(r.verified for r in reports),
            "chains": [r.as_json() for r in reports], "running": False}  # fmt: skip
