"""Ledger entries: the format, its hash and its signature (``docs/ledger.md`` §2).

An entry's body is canonical JSON with exactly the fields of :class:`Entry`. Its hash is
``chain.link(prev, canonical(body))`` and its author signs that hash
(``chain.sign_link``), so a chain is verified by the compiled core's signed-chain
verifier (or its pure twin) in one call per segment. On the wire and in storage an entry
is ``{"body": {...}, "hash": hex, "sig": hex}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from edgecoder.errors import LedgerError
from edgecoder.security.identity import NodeIdentity, is_node_id
from edgecoder.speedups import canonical, chain

__all__ = (
    "ESCROW",
    "FORMAT",
    "GENESIS_HASH",
    "KINDS",
    "TREASURY",
    "Entry",
    "SignedEntry",
    "new_entry",
    "parse_entry",
    "verify_segment",
)

FORMAT: Final = 1
"""The entry format this code writes and reads."""
TREASURY: Final = "treasury"
"""The party allowances are minted from and settlements burn to."""
ESCROW: Final = "escrow"
"""The party of holds and releases."""
KINDS: Final = frozenset({"allowance", "earn", "spend", "hold", "release", "settle", "adjust"})
GENESIS_HASH: Final = chain.GENESIS.hex()
"""The ``prev`` of a chain's first entry."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_MAX_REF = 256
_MAX_AMOUNT = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry's body (see the table in ``docs/ledger.md`` §2)."""

    v: int
    node: str
    seq: int
    prev: str
    kind: str
    amount: int
    party: str
    ref: str
    total: int
    ts: int

    def encode(self) -> bytes:
        """The canonical bytes that are hashed."""
        return canonical.encode(asdict(self))

    def as_json(self) -> dict[str, Any]:
        """The body as JSON data."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SignedEntry:
    """An entry with its hash and its author's signature."""

    entry: Entry
    hash: bytes
    sig: bytes

    @property
    def hash_hex(self) -> str:
        """The entry's hash, hex."""
        return self.hash.hex()

    def as_json(self) -> dict[str, Any]:
        """``{"body", "hash", "sig"}`` as JSON data (the wire and storage form)."""
        return {"body": self.entry.as_json(), "hash": self.hash.hex(), "sig": self.sig.hex()}


def new_entry(
    identity: NodeIdentity,
    after: SignedEntry | None,
    *,
    kind: str,
    amount: int,
    party: str,
    ref: str,
    total: int = 0,
    ts: int,
) -> SignedEntry:
    """The entry that follows ``after`` (None: the chain's first), signed by ``identity``.

    Only its form is checked here; whether the chain may take it is
    :meth:`edgecoder.ledger.rules.ChainState.check`'s to say.

    :raises LedgerError: a malformed field.
    """
    entry = Entry(
        v=FORMAT,
        node=identity.node_id,
        seq=1 if after is None else after.entry.seq + 1,
        prev=GENESIS_HASH if after is None else after.hash_hex,
        kind=kind,
        amount=amount,
        party=party,
        ref=ref,
        total=total,
        ts=ts,
    )
    _check_form(entry)
    link = chain.link(bytes.fromhex(entry.prev), entry.encode())
    return SignedEntry(entry, link, chain.sign_link(identity.secret_key, link))


def parse_entry(document: object) -> SignedEntry:
    """An entry from its wire form, its fields checked and its hash recomputed (its
    signature is checked with the author's key by :func:`verify_segment`).

    :raises LedgerError: malformed (``bad_entry``) or a hash that does not match
        (``bad_hash``).
    """
    if not isinstance(document, Mapping) or set(document) != {"body", "hash", "sig"}:
        raise LedgerError("bad_entry", "an entry is {body, hash, sig}")
    body, hash_hex, sig_hex = document["body"], document["hash"], document["sig"]
    if not isinstance(body, Mapping) or set(body) != set(Entry.__dataclass_fields__):
        raise LedgerError(
            "bad_entry", f"an entry body has exactly: {', '.join(Entry.__dataclass_fields__)}"
        )
    if not isinstance(hash_hex, str) or not _HEX64.fullmatch(hash_hex):
        raise LedgerError("bad_entry", "hash must be 64 lowercase hex digits")
    if not isinstance(sig_hex, str) or not _HEX128.fullmatch(sig_hex):
        raise LedgerError("bad_entry", "sig must be 128 lowercase hex digits")
    for name in ("v", "seq", "amount", "total", "ts"):
        if type(body[name]) is not int:
            raise LedgerError("bad_entry", f"{name} must be a whole number")
    for name in ("node", "prev", "kind", "party", "ref"):
        if not isinstance(body[name], str):
            raise LedgerError("bad_entry", f"{name} must be a string")
    entry = Entry(**body)
    _check_form(entry)
    link = chain.link(bytes.fromhex(entry.prev), entry.encode())
    if link.hex() != hash_hex:
        raise LedgerError("bad_hash", f"entry {entry.node}#{entry.seq} does not hash to its hash")
    return SignedEntry(entry, link, bytes.fromhex(sig_hex))


def _check_form(entry: Entry) -> None:
    if entry.v != FORMAT:
        raise LedgerError("bad_version", f"entry format {entry.v} is not {FORMAT}")
    if not is_node_id(entry.node):
        raise LedgerError("bad_entry", "node must be a node id")
    if not 1 <= entry.seq <= _MAX_AMOUNT:
        raise LedgerError("bad_entry", "seq must be a whole number from 1")
    if not _HEX64.fullmatch(entry.prev):
        raise LedgerError("bad_entry", "prev must be 64 lowercase hex digits")
    if entry.kind not in KINDS:
        raise LedgerError("bad_kind", f"kind must be one of {', '.join(sorted(KINDS))}")
    if not -_MAX_AMOUNT <= entry.amount <= _MAX_AMOUNT:
        raise LedgerError("bad_amount", "amount is out of range")
    if not 0 <= entry.total <= _MAX_AMOUNT:
        raise LedgerError("bad_entry", "total is out of range")
    if not (entry.party in (TREASURY, ESCROW) or is_node_id(entry.party)):
        raise LedgerError("bad_party", "party must be a node id, treasury or escrow")
    if not 0 < len(entry.ref) <= _MAX_REF:
        raise LedgerError("bad_entry", f"ref must be 1 to {_MAX_REF} characters")
    if not 0 <= entry.ts <= _MAX_AMOUNT:
        raise LedgerError("bad_entry", "ts is out of range")


def verify_segment(after: str, entries: Sequence[SignedEntry], public_key: bytes) -> int:
    """Check that ``entries`` continue the chain whose last hash is ``after`` (hex) and are
    each signed by ``public_key``: the index of the first that does not, or -1.

    One call into the signed-chain verifier (compiled or pure) for the whole segment.
    """
    if not entries:
        return -1
    return chain.verify_signed(
        bytes.fromhex(after),
        [e.entry.encode() for e in entries],
        [e.hash for e in entries],
        [e.sig for e in entries],
        public_key,
    )
