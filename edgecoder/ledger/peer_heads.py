"""The ledger heads this node holds from its peers, as the operator sees them.

Each peer signs and gossips its head (:mod:`edgecoder.ledger.heads`); this node keeps the
newest of each in its record store, for as long as the record lives, whatever the peer's
state in the membership. :func:`known_heads` lists them for ``GET /admin/ledger/peers``,
with how far this node holds each peer's chain itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgecoder.errors import LedgerError
from edgecoder.ledger.heads import HEAD, parse_head
from edgecoder.mesh.node import MeshNode

__all__ = ("known_heads",)


def known_heads(
    mesh: MeshNode, network_key: str, stored: Mapping[str, tuple[int, str]]
) -> list[dict[str, Any]]:
    """Every member's ledger head this node holds, sorted by node id.

    :param network_key: the network key this node pinned (a head under another is of
        another economy: ``same_economy`` false).
    :param stored: how far this node holds each chain itself (node → (seq, hash)).
    """
    out = []
    for member in mesh.membership.members():
        record = mesh.store.get(member.node_id, HEAD)
        if record is None:
            continue
        try:
            head = parse_head(record.body)
        except LedgerError:  # refused at gossip already; never shown half-read
            continue
        out.append({
            "node_id": member.node_id,
            "state": member.state,
            "network_key": head.network_key,
            "same_economy": bool(network_key) and head.network_key == network_key,
            "seq": head.seq,
            "hash": head.hash,
            "balance": head.balance,
            "held": head.held,
            "available": head.balance - head.held,
            "allowance": head.allowance,
            "vouches_issued": len(head.vouches),
            "stored_seq": stored.get(member.node_id, (0, ""))[0],
            "issued_ms": record.issued_ms,
            "expires_ms": record.expires_ms,
        })  # fmt: skip
    return sorted(out, key=lambda head: str(head["node_id"]))
