"""Vouches: signed grants of a node's starting allowance (``docs/ledger.md`` §5).

A vouch's body is canonical JSON::

    {"v": 1, "network", "network_key", "node", "amount", "voucher", "voucher_key",
     "slot", "issued_ms", "standing"}

signed by ``voucher_key`` over ``DOMAIN || canonical(body)``. The voucher is either the
network key itself (``voucher`` is ``"network"``, ``voucher_key`` the network key, ``slot``
0, ``standing`` empty) or a node with standing: then ``voucher`` is its node id (derived
from ``voucher_key``), ``slot`` numbers its vouches from 1 to :data:`VOUCH_QUOTA`, and
``standing`` is its own vouch by the network key, nested, so anyone can check it alone.
A vouch's hash is what an ``allowance`` entry names as its ``ref``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from edgecoder.errors import LedgerError
from edgecoder.security.identity import NodeIdentity, derive_node_id, is_node_id
from edgecoder.speedups import canonical, signing

__all__ = (
    "DOMAIN",
    "MAX_ALLOWANCE_MC",
    "NETWORK",
    "VOUCH_QUOTA",
    "Vouch",
    "make_vouch",
    "parse_vouch",
)

DOMAIN: Final = b"edgecoder/vouch/v1\x00"
NETWORK: Final = "network"
"""The ``voucher`` of a vouch signed by the network key."""
MAX_ALLOWANCE_MC: Final = 100_000
"""The most any vouch grants (100 credits): the cap on what one identity can be given."""
VOUCH_QUOTA: Final = 2
"""How many nodes one node with standing may vouch for."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_FIELDS = ("v", "network", "network_key", "node", "amount", "voucher", "voucher_key", "slot",
           "issued_ms", "standing")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Vouch:
    """One signed vouch."""

    network: str
    network_key: str
    """Hex Ed25519 public key of the network (the treasury)."""
    node: str
    amount: int
    voucher: str
    voucher_key: str
    slot: int
    issued_ms: int
    sig: str
    standing: Vouch | None = field(default=None)
    """The voucher's own vouch by the network key (None when the voucher is the network)."""

    def body(self) -> dict[str, Any]:
        """The signed body."""
        out = {k: v for k, v in asdict(self).items() if k not in ("sig", "standing")}
        out["v"] = 1
        out["standing"] = self.standing.as_json() if self.standing is not None else {}
        return out

    def signed_bytes(self) -> bytes:
        """What the signature covers."""
        return DOMAIN + canonical.encode(self.body())

    @property
    def hash(self) -> str:
        """The vouch's hash (hex): what an allowance names."""
        return hashlib.sha256(self.signed_bytes()).hexdigest()

    def as_json(self) -> dict[str, Any]:
        """``{"body", "sig"}`` as JSON data."""
        return {"body": self.body(), "sig": self.sig}

    def valid_for(self, network: str, network_key: str) -> str | None:
        """Why this vouch grants nothing in that network (None: it is valid)."""
        if self.network != network or self.network_key != network_key:
            return "another network"
        if not 0 < self.amount <= MAX_ALLOWANCE_MC:
            return f"an amount outside 1..{MAX_ALLOWANCE_MC}"
        key = bytes.fromhex(self.voucher_key)
        if not signing.verify(key, self.signed_bytes(), bytes.fromhex(self.sig)):
            return "a bad signature"
        if self.voucher == NETWORK:
            if self.voucher_key != network_key or self.slot != 0 or self.standing is not None:
                return "a network vouch not signed by the network key"
            return None
        if derive_node_id(key) != self.voucher:
            return "a voucher whose key is not its node id's"
        if not 1 <= self.slot <= VOUCH_QUOTA:
            return f"a slot outside 1..{VOUCH_QUOTA}"
        standing = self.standing
        if standing is None or standing.node != self.voucher or standing.voucher != NETWORK:
            return "a voucher without standing"
        return standing.valid_for(network, network_key)


def make_vouch(
    signer: NodeIdentity,
    *,
    network: str,
    network_key: str,
    node: str,
    amount: int,
    issued_ms: int,
    slot: int = 0,
    standing: Vouch | None = None,
) -> Vouch:
    """A vouch for ``node`` signed by ``signer`` (the network key when ``standing`` is
    None, else a node with standing vouching in its ``slot``)."""
    voucher = NETWORK if standing is None else signer.node_id
    unsigned = Vouch(network, network_key, node, amount, voucher, signer.public_key.hex(), slot,
                     issued_ms, "", standing)  # fmt: skip
    sig = signer.sign(unsigned.signed_bytes()).hex()
    return Vouch(network, network_key, node, amount, voucher, signer.public_key.hex(), slot,
                 issued_ms, sig, standing)  # fmt: skip


def parse_vouch(document: object, depth: int = 0) -> Vouch:
    """A vouch from its JSON form (its validity in a network is :meth:`Vouch.valid_for`).

    :raises LedgerError: malformed (``bad_vouch``).
    """
    if not isinstance(document, Mapping) or set(document) != {"body", "sig"}:
        raise LedgerError("bad_vouch", "a vouch is {body, sig}")
    body, sig = document["body"], document["sig"]
    if not isinstance(body, Mapping) or set(body) != set(_FIELDS):
        raise LedgerError("bad_vouch", f"a vouch body has exactly: {', '.join(_FIELDS)}")
    if not isinstance(sig, str) or not _HEX128.fullmatch(sig):
        raise LedgerError("bad_vouch", "sig must be 128 lowercase hex digits")
    if body["v"] != 1:
        raise LedgerError("bad_vouch", "vouch format 1 only")
    for name in ("amount", "slot", "issued_ms"):
        if type(body[name]) is not int or body[name] < 0:
            raise LedgerError("bad_vouch", f"{name} must be a whole number")
    for name in ("network_key", "voucher_key"):
        if not isinstance(body[name], str) or not _HEX64.fullmatch(body[name]):
            raise LedgerError("bad_vouch", f"{name} must be 64 lowercase hex digits")
    if not isinstance(body["network"], str) or not isinstance(body["node"], str):
        raise LedgerError("bad_vouch", "network and node must be strings")
    if not is_node_id(body["node"]):
        raise LedgerError("bad_vouch", "node must be a node id")
    voucher = body["voucher"]
    if not isinstance(voucher, str) or not (voucher == NETWORK or is_node_id(voucher)):
        raise LedgerError("bad_vouch", "voucher must be 'network' or a node id")
    nested = body["standing"]
    standing = None
    if nested != {}:
        if depth > 0:
            raise LedgerError("bad_vouch", "a standing vouch is the network's own")
        standing = parse_vouch(nested, depth + 1)
    return Vouch(body["network"], body["network_key"], body["node"], body["amount"], voucher,
                 body["voucher_key"], body["slot"], body["issued_ms"], sig, standing)  # fmt: skip
