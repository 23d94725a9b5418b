"""The blacklist audit chain: no node is shut out without evidence anyone can check.

Each author keeps a hash-linked chain of ``blacklist`` records: entry *n* has ``seq = n``
and ``body.prev`` = the link hash of entry *n-1* (32 zero bytes for the first), where an
entry's link hash is ``chain.link(prev, canonical(entry with signature))``. The body names
the accused, the reason, and the evidence: its kind, the SHA-256 of its canonical data,
and the data itself. Evidence kinds, each verifiable without trusting the author:

* ``equivocation``: two records validly signed by the accused with the same kind and
  sequence number but different content;
* ``ledger_fork``: two entries of the accused's credit ledger with the same sequence
  number and different hashes, both signed by it (``docs/ledger.md`` §7);
* ``forged_relay``: a mesh request validly signed by the accused whose body is a record
  that does not verify — the accused relayed a forgery.

An entry whose evidence does not verify is refused; :func:`verify_chain` finds any edit,
reorder or removal (a removed tail is found against the author's signed ``chain_head``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from edgecoder.errors import BlacklistError, LedgerError, RecordError
from edgecoder.ledger.entries import parse_entry, verify_segment
from edgecoder.security.identity import NodeIdentity
from edgecoder.speedups import chain, envelope, signing
from edgecoder.wire import canonical
from edgecoder.wire.records import SignedRecord, check_authorship, parse_record, sign_record

__all__ = (
    "ENTRY_TTL_MS",
    "EVIDENCE_KINDS",
    "Blacklist",
    "blacklist_entry",
    "chain_head",
    "entry_hash",
    "verify_chain",
    "verify_evidence",
)

EVIDENCE_KINDS = frozenset({"equivocation", "forged_relay", "ledger_fork"})
ENTRY_TTL_MS = 7 * 24 * 3600 * 1000


def entry_hash(prev: bytes, entry: SignedRecord) -> bytes:
    """The link hash of an entry following ``prev``."""
    return bytes(chain.link(prev, entry.wire_bytes()))


def _evidence_digest(data: object) -> str:
    return hashlib.sha256(canonical.encode(data)).hexdigest()


def verify_evidence(accused: str, evidence: object) -> None:
    """Check that ``evidence`` proves misbehaviour by ``accused``.

    :raises BlacklistError: ``bad_evidence`` or ``evidence_hash``.
    """
    kind = evidence.get("kind") if isinstance(evidence, dict) else None
    if not isinstance(evidence, dict) or not isinstance(kind, str) or kind not in EVIDENCE_KINDS:
        raise BlacklistError(
            "bad_evidence", f"evidence kind must be one of {sorted(EVIDENCE_KINDS)}"
        )
    data = evidence.get("data")
    if not isinstance(data, dict):
        raise BlacklistError(
            "bad_evidence", "the evidence data must be included (fetching it is not supported yet)"
        )
    if evidence.get("sha256") != _evidence_digest(data):
        raise BlacklistError("evidence_hash", "the evidence does not match its hash")
    try:
        if evidence["kind"] == "equivocation":
            _equivocation(accused, data)
        elif evidence["kind"] == "ledger_fork":
            _ledger_fork(accused, data)
        else:
            _forged_relay(accused, data)
    except (RecordError, LedgerError, KeyError, TypeError, ValueError) as exc:
        raise BlacklistError("bad_evidence", f"the evidence does not hold: {exc}") from None


def _equivocation(accused: str, data: dict[str, Any]) -> None:
    first, second = parse_record(data["first"]), parse_record(data["second"])
    check_authorship(first)
    check_authorship(second)
    if not (first.author == second.author == accused):
        raise ValueError("both records must be by the accused")
    if (first.kind, first.seq) != (second.kind, second.seq):
        raise ValueError("the records must share kind and sequence number")
    if first.signed_bytes() == second.signed_bytes():
        raise ValueError("the records are the same")


def _ledger_fork(accused: str, data: dict[str, Any]) -> None:
    key = bytes.fromhex(data["key"])
    if envelope.node_id_of(key) != accused:
        raise ValueError("the key must be the accused's")
    first, second = parse_entry(data["first"]), parse_entry(data["second"])
    if not (first.entry.node == second.entry.node == accused):
        raise ValueError("both entries must be in the accused's chain")
    if first.entry.seq != second.entry.seq or first.hash == second.hash:
        raise ValueError("the entries must share a sequence number and differ")
    for entry in (first, second):
        if verify_segment(entry.entry.prev, [entry], key) != -1:
            raise ValueError("the accused did not sign both entries")


def _forged_relay(accused: str, data: dict[str, Any]) -> None:
    headers = data["headers"]
    body = str(data["body"]).encode()
    key = bytes.fromhex(headers["x-ec-key"])
    if headers["x-ec-sender"] != accused or envelope.node_id_of(key) != accused:
        raise ValueError("the request must be signed by the accused")
    if hashlib.sha256(body).hexdigest() != headers["x-ec-body-sha256"]:
        raise ValueError("the body does not match the signed hash")
    message = envelope.signing_bytes(
        str(data["method"]), str(data["target"]), accused, headers["x-ec-recipient"],
        int(headers["x-ec-timestamp"]), headers["x-ec-nonce"], headers["x-ec-body-sha256"],
    )  # fmt: skip
    if not signing.verify(key, message, bytes.fromhex(headers["x-ec-signature"])):
        raise ValueError("the accused did not sign this request")
    relayed = parse_record(json.loads(body))
    try:
        check_authorship(relayed)
    except RecordError:
        return  # the accused relayed a record that is not what its author signed
    raise ValueError("the relayed record is genuine")


def blacklist_entry(
    author: NodeIdentity,
    previous: Sequence[SignedRecord],
    accused: str,
    reason: str,
    evidence_kind: str,
    evidence_data: dict[str, Any],
    issued_ms: int,
) -> SignedRecord:
    """The next entry of ``author``'s chain (``previous`` is the chain so far)."""
    prev = chain.GENESIS
    for entry in previous:
        prev = entry_hash(prev, entry)
    body = {
        "accused": accused,
        "reason": reason,
        "evidence": {"kind": evidence_kind, "sha256": _evidence_digest(evidence_data),
                     "data": evidence_data},
        "prev": prev.hex(),
    }  # fmt: skip
    return sign_record(author, "blacklist", len(previous), body, issued_ms, ENTRY_TTL_MS)


def chain_head(
    author: NodeIdentity, entries: Sequence[SignedRecord], issued_ms: int
) -> SignedRecord:
    """The author's signed statement of its chain's length and last hash."""
    head = chain.GENESIS
    for entry in entries:
        head = entry_hash(head, entry)
    body = {"chain": "blacklist", "length": len(entries), "hash": head.hex()}
    return sign_record(author, "chain_head", len(entries), body, issued_ms, ENTRY_TTL_MS)


def verify_chain(entries: Sequence[SignedRecord], head: SignedRecord | None = None) -> int:
    """Index of the first entry that is edited, out of order, missing or unproven; -1 if none.

    With ``head`` (the author's signed ``chain_head``), a removed tail is found too: the
    index returned is then ``len(entries)``.
    """
    prev = chain.GENESIS
    author = entries[0].author if entries else (head.author if head else "")
    for index, entry in enumerate(entries):
        try:
            if entry.kind != "blacklist" or entry.author != author or entry.seq != index:
                raise BlacklistError("order", "entry out of place")
            check_authorship(entry)
            if entry.body.get("prev") != prev.hex():
                raise BlacklistError("bad_link", "prev does not match the previous entry")
            verify_evidence(str(entry.body.get("accused")), entry.body.get("evidence"))
        except (BlacklistError, RecordError):
            return index
        prev = entry_hash(prev, entry)
    if head is not None:
        try:
            check_authorship(head)
        except RecordError:
            return len(entries)
        if (
            head.author != author
            or head.body.get("length") != len(entries)
            or (head.body.get("hash") != prev.hex())
        ):
            return min(len(entries), int(head.body.get("length", 0)))
    return -1


class Blacklist:
    """Nodes blacklisted on verified evidence, with every author's chain position."""

    def __init__(self) -> None:
        self._heads: dict[str, tuple[int, bytes]] = {}
        self._accused: dict[str, list[SignedRecord]] = {}

    def accept(self, entry: SignedRecord) -> None:
        """Verify an entry (signature, its place in its author's chain, its evidence).

        :raises BlacklistError: ``order``, ``bad_link``, ``bad_evidence``,
            ``evidence_hash``, or a record error's code.
        """
        if entry.kind != "blacklist":
            raise BlacklistError("order", "not a blacklist entry")
        try:
            check_authorship(entry)
        except RecordError as exc:
            raise BlacklistError(exc.code, str(exc)) from None
        seq, prev = self._heads.get(entry.author, (-1, chain.GENESIS))
        if entry.seq != seq + 1:
            raise BlacklistError("order", f"expected entry {seq + 1} of {entry.author}'s chain")
        if entry.body.get("prev") != prev.hex():
            raise BlacklistError("bad_link", "prev does not match the author's last entry")
        accused = str(entry.body.get("accused"))
        verify_evidence(accused, entry.body.get("evidence"))
        self._heads[entry.author] = (entry.seq, entry_hash(prev, entry))
        self._accused.setdefault(accused, []).append(entry)

    def entries_by(self, author: str) -> list[SignedRecord]:
        """``author``'s accepted entries, in order (what spreads to a peer that lacks them)."""
        found = [e for entries in self._accused.values() for e in entries if e.author == author]
        return sorted(found, key=lambda e: e.seq)

    def is_blacklisted(self, node_id: str) -> bool:
        """Whether verified evidence against ``node_id`` was accepted."""
        return node_id in self._accused

    def evidence_against(self, node_id: str) -> list[SignedRecord]:
        """The accepted entries accusing ``node_id``."""
        return list(self._accused.get(node_id, []))
