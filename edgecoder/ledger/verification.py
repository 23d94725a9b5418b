"""Verifying every chain a node holds, from its first entry: one report per chain.

(``docs/ledger.md`` §2 and §9, ``edgecoder credits verify``.) Each chain is checked by the
compiled core's signed-chain verifier (or its pure twin) in one call — every link and,
when the author's key is known, every signature — and then folded through the chain rules
(:class:`~edgecoder.ledger.rules.ChainState`): sequence, kinds, cumulative totals, holds,
vouched allowances, no overdraft. A peer's key is known while its signed peer record is
held (a running node) — this node's own always; without it the links and the rules are
still checked, and the report says the signatures were not. Pure apart from
:func:`read_chains`, a database read meant for ``Database.run``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgecoder.errors import LedgerError
from edgecoder.ledger.entries import GENESIS_HASH, SignedEntry, verify_segment
from edgecoder.ledger.rules import ChainState, VouchLookup
from edgecoder.speedups import chain
from edgecoder.storage import ledger_rows

__all__ = ("ChainReport", "read_chains", "verify_chain", "verify_chains")


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What verifying one chain found."""

    node: str
    entries: int
    seq: int
    """The last entry's sequence number (0: no entry)."""
    head: str
    balance: int
    held: int
    available: int
    allowance: int
    """As folded up to the first entry that failed (the whole chain when none did)."""
    signatures: bool
    """Whether every signature was checked (the author's key was known)."""
    code: str = ""
    """Empty when the chain verifies, else what failed: ``bad_chain`` (a link or a
    signature), or the chain rule's code (``overdraft``, ``bad_total``, ``no_vouch``...)."""
    message: str = ""
    at_seq: int = 0
    """The entry that failed (0 when none did)."""

    @property
    def verified(self) -> bool:
        """Whether the chain verifies."""
        return not self.code

    def as_json(self) -> dict[str, Any]:
        """The report as JSON data."""
        return {"node": self.node, "entries": self.entries, "seq": self.seq, "head": self.head,
                "balance": self.balance, "held": self.held, "available": self.available,
                "allowance": self.allowance, "signatures": self.signatures,
                "verified": self.verified, "code": self.code, "message": self.message,
                "at_seq": self.at_seq}  # fmt: skip


def verify_chain(
    node: str, entries: Sequence[SignedEntry], public_key: bytes | None, vouches: VouchLookup
) -> ChainReport:
    """Verify ``node``'s chain ``entries`` (in order, from seq 1).

    ``public_key`` None: the author's key is unknown; links and rules are checked, the
    signatures are not.
    """
    if public_key is not None:
        bad = verify_segment(GENESIS_HASH, entries, public_key)
    else:
        bad = chain.verify(chain.GENESIS, [e.entry.encode() for e in entries],
                           [e.hash for e in entries])  # fmt: skip
    state = ChainState(node, vouches)
    code = message = ""
    at_seq = 0
    for index, entry in enumerate(entries):
        if index == bad:
            code, at_seq = "bad_chain", entry.entry.seq
            what = "link or signature" if public_key is not None else "link"
            message = f"entry {entry.entry.seq}'s {what} does not verify"
            break
        try:
            state.apply(entry)
        except LedgerError as exc:
            code, message, at_seq = exc.code, str(exc), entry.entry.seq
            break
    last = entries[-1] if entries else None
    return ChainReport(
        node=node,
        entries=len(entries),
        seq=last.entry.seq if last is not None else 0,
        head=last.hash_hex if last is not None else GENESIS_HASH,
        balance=state.balance,
        held=state.held,
        available=state.available,
        allowance=state.allowance,
        signatures=public_key is not None,
        code=code,
        message=message,
        at_seq=at_seq,
    )


def read_chains(conn: sqlite3.Connection) -> dict[str, list[SignedEntry]]:
    """Every chain held in the database, each in order (for ``Database.run``)."""
    heads = ledger_rows.chain_heads(conn)
    return {node: ledger_rows.entries_of(conn, node) for node in sorted(heads)}


def verify_chains(
    chains: dict[str, list[SignedEntry]],
    own: str,
    key_of: Callable[[str], bytes | None],
    vouches: VouchLookup,
) -> list[ChainReport]:
    """A report for every chain, this node's own (``own``) first even when it is empty.

    CPU-bound: run it in a worker thread (the compiled verifier releases the GIL).
    """
    reports = [verify_chain(own, chains.get(own, []), key_of(own), vouches)]
    for node in sorted(set(chains) - {own}):
        reports.append(verify_chain(node, chains[node], key_of(node), vouches))
    return reports
