"""Task receipts: the origin's signed account of one finished task, countersigned by its worker.

A receipt's body is canonical JSON::

    {"task_id", "attempt", "origin", "worker", "model", "model_digest",
     "prompt_tokens", "output_tokens", "wall_ms", "price_pct", "finished_ms",
     "price", "total"}

The origin signs ``"edgecoder-receipt-v1" || 0x00 || canonical(body)`` with its node key;
the worker checks the body against its own record of the run (same task, attempt,
model digest and token counts) and signs the same bytes. ``price`` is what the task costs
(mc, :func:`edgecoder.ledger.pricing.price_mc`) and ``total`` the cumulative mc the origin
has paid this worker, this task included: a lost receipt loses nothing, the next one
restates the total. A receipt with both signatures is what the ledger credits and
debits; neither side can alter it afterwards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from edgecoder.errors import TaskMessageError
from edgecoder.security.identity import NodeIdentity, derive_node_id
from edgecoder.speedups import signing
from edgecoder.wire import canonical

__all__ = (
    "DOMAIN",
    "FIELDS",
    "Receipt",
    "check_receipt_body",
    "receipt_hash",
    "sign_receipt",
    "verify_signature",
)

DOMAIN = b"edgecoder-receipt-v1\x00"
FIELDS = ("task_id", "attempt", "origin", "worker", "model", "model_digest",
          "prompt_tokens", "output_tokens", "wall_ms", "price_pct", "finished_ms", "price",
          "total")  # fmt: skip
_INT_FIELDS = ("attempt", "prompt_tokens", "output_tokens", "wall_ms", "price_pct", "finished_ms",
               "price", "total")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Receipt:
    """A receipt body and the signatures it has so far (hex; empty when missing)."""

    body: dict[str, Any]
    origin_sig: str
    worker_sig: str = ""

    def signed_bytes(self) -> bytes:
        """What both signatures cover."""
        return DOMAIN + canonical.encode(self.body)

    def as_dict(self) -> dict[str, Any]:
        """The receipt as JSON data."""
        return {"body": self.body, "origin_sig": self.origin_sig, "worker_sig": self.worker_sig}


def check_receipt_body(body: object) -> dict[str, Any]:
    """The body if it has exactly the receipt's fields with the right types.

    :raises TaskMessageError: it does not.
    """
    if not isinstance(body, dict) or set(body) != set(FIELDS):
        raise TaskMessageError("bad_receipt", f"a receipt body has exactly: {', '.join(FIELDS)}")
    for name in FIELDS:
        value = body[name]
        kind_ok = (
            type(value) is int and value >= 0 if name in _INT_FIELDS else isinstance(value, str)
        )
        if not kind_ok:
            raise TaskMessageError("bad_receipt", f"receipt field {name} has the wrong type")
    return body


def receipt_hash(body: dict[str, Any]) -> str:
    """The receipt's hash (hex): what the ledger entries it causes name as their ``ref``."""
    return hashlib.sha256(DOMAIN + canonical.encode(body)).hexdigest()


def sign_receipt(identity: NodeIdentity, body: dict[str, Any]) -> str:
    """This node's signature (hex) over a receipt body."""
    return identity.sign(DOMAIN + canonical.encode(body)).hex()


def verify_signature(public_key: bytes, body: dict[str, Any], signature_hex: str) -> bool:
    """Whether ``signature_hex`` is the signature over ``body`` by ``public_key``."""
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    return signing.verify(public_key, DOMAIN + canonical.encode(body), signature)


def signer_matches(public_key: bytes, node_id: str) -> bool:
    """Whether ``public_key`` is the key of ``node_id``."""
    return len(public_key) == signing.PUBLIC_KEY_BYTES and derive_node_id(public_key) == node_id
