"""Ledger heads: what each node announces of its chain, signed and gossiped like an advert.

A head is the body of a ``ledger_head`` record (``edgecoder.wire.records``), re-signed
whenever it changes::

    {"network_key", "seq", "hash", "balance", "held", "allowance", "vouches": [...]}

``vouches`` are those the node issued (at most :data:`MAX_VOUCHES`): how a vouched node
receives its vouch, and how anyone can check the allowance it then claims.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from edgecoder.errors import LedgerError
from edgecoder.ledger.entries import GENESIS_HASH
from edgecoder.ledger.genesis import PeerHead
from edgecoder.ledger.vouches import Vouch, parse_vouch

__all__ = ("HEAD", "MAX_VOUCHES", "Head", "parse_head")

HEAD: Final = "ledger_head"
"""The record kind."""
MAX_VOUCHES: Final = 64

_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("network_key", "seq", "hash", "balance", "held", "allowance", "vouches")


@dataclass(frozen=True, slots=True)
class Head:
    """One node's announced chain head."""

    network_key: str
    seq: int
    hash: str
    balance: int
    held: int
    allowance: int
    vouches: tuple[Vouch, ...] = ()

    def body(self) -> dict[str, Any]:
        """The record body."""
        return {"network_key": self.network_key, "seq": self.seq, "hash": self.hash,
                "balance": self.balance, "held": self.held, "allowance": self.allowance,
                "vouches": [v.as_json() for v in self.vouches]}  # fmt: skip

    def peer(self, node: str) -> PeerHead:
        """What the genesis machine needs of it."""
        return PeerHead(node, self.network_key, self.allowance, self.vouches)


def parse_head(body: object) -> Head:
    """A head from a record body.

    :raises LedgerError: malformed (``bad_head``, or a vouch's code).
    """
    if not isinstance(body, Mapping) or set(body) != set(_FIELDS):
        raise LedgerError("bad_head", f"a ledger head has exactly: {', '.join(_FIELDS)}")
    key, hash_hex, vouches = body["network_key"], body["hash"], body["vouches"]
    if not isinstance(key, str) or not (key == "" or _HEX64.fullmatch(key)):
        raise LedgerError("bad_head", "network_key must be empty or 64 lowercase hex digits")
    if not isinstance(hash_hex, str) or not _HEX64.fullmatch(hash_hex):
        raise LedgerError("bad_head", "hash must be 64 lowercase hex digits")
    for name in ("seq", "balance", "held", "allowance"):
        if type(body[name]) is not int or body[name] < 0:
            raise LedgerError("bad_head", f"{name} must be a whole number")
    if body["seq"] == 0 and hash_hex != GENESIS_HASH:
        raise LedgerError("bad_head", "an empty chain's hash is the genesis hash")
    if not isinstance(vouches, list) or len(vouches) > MAX_VOUCHES:
        raise LedgerError("bad_head", f"vouches must be a list of at most {MAX_VOUCHES}")
    return Head(key, body["seq"], hash_hex, body["balance"], body["held"], body["allowance"],
                tuple(parse_vouch(v) for v in vouches))  # fmt: skip
