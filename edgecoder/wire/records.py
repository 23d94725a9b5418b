"""Signed records: what nodes gossip (peer records, adverts, blacklist entries, ledger heads).

A record is signed by its *author*, not by the hop that relays it, so no relay can forge
or alter one. Each carries the author's key (its node id must match), a per-author,
per-kind sequence number, when it was issued and how long it lives. The signature covers
``"edgecoder-record-v1" || 0x00 || canonical(record without "sig")``.

:class:`RecordStore` keeps the newest record per (author, kind): a stale record never
overwrites a newer one, and two different records with the same sequence number are an
*equivocation* — proof, checkable by anyone, that the author misbehaved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edgecoder.errors import CanonicalError, RecordError
from edgecoder.security.identity import NodeIdentity
from edgecoder.speedups import envelope, signing
from edgecoder.wire import canonical

__all__ = (
    "DOMAIN",
    "KINDS",
    "MAX_TTL_MS",
    "RecordStore",
    "SignedRecord",
    "check_authorship",
    "parse_record",
    "sign_record",
    "verify_record",
)

DOMAIN = b"edgecoder-record-v1\x00"
KINDS = frozenset(
    {
        "peer",
        "advert",
        "blacklist",
        "chain_head",
        "ledger_head",
        "ledger_entry",
        "key_rotation",
        "checkpoint",
    }
)
MAX_TTL_MS = 7 * 24 * 3600 * 1000
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_FIELDS = ("kind", "author", "key", "seq", "issued_ms", "ttl_ms", "body", "sig")


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """One author-signed record."""

    kind: str
    author: str
    key: str
    seq: int
    issued_ms: int
    ttl_ms: int
    body: dict[str, Any]
    sig: str

    def unsigned(self) -> dict[str, Any]:
        """Every field but the signature."""
        return {"kind": self.kind, "author": self.author, "key": self.key, "seq": self.seq,
                "issued_ms": self.issued_ms, "ttl_ms": self.ttl_ms, "body": self.body}  # fmt: skip

    def signed_bytes(self) -> bytes:
        """What the signature covers."""
        return DOMAIN + canonical.encode(self.unsigned())

    def to_wire(self) -> dict[str, Any]:
        """The record as JSON data, signature included."""
        return {**self.unsigned(), "sig": self.sig}

    def wire_bytes(self) -> bytes:
        """The canonical encoding of :meth:`to_wire` (what is hashed into chains)."""
        return canonical.encode(self.to_wire())

    @property
    def expires_ms(self) -> int:
        """When the record stops being valid."""
        return self.issued_ms + self.ttl_ms


def sign_record(
    identity: NodeIdentity, kind: str, seq: int, body: dict[str, Any], issued_ms: int, ttl_ms: int
) -> SignedRecord:
    """Make a record authored and signed by ``identity``.

    :raises RecordError: unknown kind, bad sequence or lifetime, or a body with no
        canonical form.
    """
    draft = SignedRecord(kind, identity.node_id, identity.public_key.hex(), seq, issued_ms,
                         ttl_ms, body, "")  # fmt: skip
    _check_shape(draft)
    try:
        message = draft.signed_bytes()
    except CanonicalError as exc:
        raise RecordError("bad_shape", f"body has no canonical form: {exc}") from None
    return SignedRecord(**{**draft.unsigned(), "sig": identity.sign(message).hex()})


def _check_shape(record: SignedRecord) -> None:
    if record.kind not in KINDS:
        raise RecordError("bad_shape", f"unknown record kind {record.kind!r}")
    if not isinstance(record.seq, int) or isinstance(record.seq, bool) or record.seq < 0:
        raise RecordError("bad_shape", "seq must be a non-negative integer")
    for name in ("issued_ms", "ttl_ms"):
        value = getattr(record, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RecordError("bad_shape", f"{name} must be a non-negative integer")
    if not isinstance(record.body, dict):
        raise RecordError("bad_shape", "body must be an object")


def parse_record(wire: object) -> SignedRecord:
    """A record from JSON data, checked for shape (not yet for its signature).

    :raises RecordError: ``bad_shape``.
    """
    if not isinstance(wire, dict) or set(wire) != set(_FIELDS):
        raise RecordError("bad_shape", f"a record has exactly the fields {', '.join(_FIELDS)}")
    for name in ("kind", "author", "key", "sig"):
        if not isinstance(wire[name], str):
            raise RecordError("bad_shape", f"{name} must be a string")
    if not _HEX64.fullmatch(wire["key"]) or not _HEX128.fullmatch(wire["sig"]):
        raise RecordError("bad_shape", "key and sig must be lowercase hex of 32 and 64 bytes")
    record = SignedRecord(**wire)
    _check_shape(record)
    return record


def check_authorship(record: SignedRecord) -> None:
    """Check only that the author's key signed this record (no lifetime check: for audits).

    :raises RecordError: ``bad_key`` or ``bad_signature``.
    """
    key = bytes.fromhex(record.key)
    if envelope.node_id_of(key) != record.author:
        raise RecordError("bad_key", "the key does not belong to the author's node id")
    try:
        message = record.signed_bytes()
    except CanonicalError as exc:
        raise RecordError("bad_shape", str(exc)) from None
    if not signing.verify(key, message, bytes.fromhex(record.sig)):
        raise RecordError("bad_signature", "the author's signature does not verify")


def verify_record(
    record: SignedRecord, now_ms: int, *, skew_ms: int = 30_000, max_ttl_ms: int = MAX_TTL_MS
) -> None:
    """Check a record's authorship, signature and lifetime, whoever relayed it.

    :raises RecordError: ``bad_key`` (the key is not the author's), ``bad_signature``,
        ``ttl_too_long``, ``future`` (issued beyond the clock skew) or ``expired``.
    """
    check_authorship(record)
    if record.ttl_ms > max_ttl_ms:
        raise RecordError("ttl_too_long", f"ttl {record.ttl_ms} ms exceeds {max_ttl_ms} ms")
    if record.issued_ms > now_ms + skew_ms:
        raise RecordError("future", "issued in the future beyond the clock skew")
    if record.expires_ms <= now_ms:
        raise RecordError("expired", "the record's lifetime has passed")


class RecordStore:
    """The newest verified record per (author, kind)."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], SignedRecord] = {}

    def offer(self, record: SignedRecord, now_ms: int, *, verified: bool = False) -> str:
        """Consider a record; returns ``new``, ``stale``, ``duplicate`` or ``equivocation``.

        ``verified`` skips the check when the caller has just run :func:`verify_record`.

        :raises RecordError: the record does not verify (see :func:`verify_record`).
        """
        if not verified:
            verify_record(record, now_ms)
        slot = (record.author, record.kind)
        held = self._records.get(slot)
        if held is not None and held.expires_ms > now_ms:
            if record.seq < held.seq:
                return "stale"
            if record.seq == held.seq:
                return "duplicate" if record.sig == held.sig else "equivocation"
        self._records[slot] = record
        return "new"

    def get(self, author: str, kind: str) -> SignedRecord | None:
        """The newest record of that author and kind, if any."""
        return self._records.get((author, kind))

    def digest(self) -> dict[tuple[str, str], int]:
        """(author, kind) → highest sequence held: what anti-entropy exchanges."""
        return {slot: record.seq for slot, record in self._records.items()}

    def expire(self, now_ms: int) -> int:
        """Drop records whose lifetime has passed; returns how many."""
        gone = [slot for slot, r in self._records.items() if r.expires_ms <= now_ms]
        for slot in gone:
            del self._records[slot]
        return len(gone)
