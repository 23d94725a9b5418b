"""Key rotation: the old key signs the new one, the new key proves possession, peers accept
both for a grace window.

A rotation is a ``key_rotation`` record authored (and signed) by the *old* node, whose
body names the new key and carries the new key's signature over
``"edgecoder-rotation-v1" || 0x00 || old key || new key``. :class:`KeyRotations` tracks
accepted rotations: the old id stays valid until ``issued_ms + grace_ms``, then is retired.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecoder.errors import RecordError
from edgecoder.security.identity import NodeIdentity
from edgecoder.speedups import envelope, signing
from edgecoder.wire.records import SignedRecord, sign_record, verify_record

__all__ = ("ROTATION", "ROTATION_DOMAIN", "KeyRotations", "Rotation", "rotation_record")

ROTATION = "key_rotation"
"""The record kind."""
ROTATION_DOMAIN = b"edgecoder-rotation-v1\x00"
MAX_GRACE_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Rotation:
    """An accepted rotation."""

    old_id: str
    new_id: str
    retire_ms: int


def rotation_record(
    old: NodeIdentity, new: NodeIdentity, issued_ms: int, grace_ms: int
) -> SignedRecord:
    """The record announcing that ``old`` hands over to ``new``."""
    proof = new.sign(ROTATION_DOMAIN + old.public_key + new.public_key)
    body = {"new_key": new.public_key.hex(), "new_node_id": new.node_id, "grace_ms": grace_ms,
            "new_sig": proof.hex()}  # fmt: skip
    # The record outlives the grace window, so a peer that hears of it late still learns
    # that the old key is retired.
    return sign_record(old, "key_rotation", 0, body, issued_ms, MAX_GRACE_MS)


class KeyRotations:
    """Accepted rotations, by old and by new node id."""

    def __init__(self) -> None:
        self._by_old: dict[str, Rotation] = {}

    def accept(self, record: SignedRecord, now_ms: int) -> Rotation:
        """Verify and remember a rotation record.

        :raises RecordError: not a rotation, bad signatures, or a grace beyond 7 days.
        """
        if record.kind != "key_rotation":
            raise RecordError("bad_shape", "not a key_rotation record")
        verify_record(record, now_ms)
        body = record.body
        try:
            new_key = bytes.fromhex(body["new_key"])
            proof = bytes.fromhex(body["new_sig"])
            grace = int(body["grace_ms"])
            new_id = str(body["new_node_id"])
        except (KeyError, TypeError, ValueError):
            raise RecordError(
                "bad_shape", "a rotation names new_key, new_node_id, grace_ms, new_sig"
            ) from None
        if len(new_key) != 32 or envelope.node_id_of(new_key) != new_id:
            raise RecordError("bad_key", "new_node_id does not belong to new_key")
        if not 0 <= grace <= MAX_GRACE_MS:
            raise RecordError("bad_shape", "grace_ms must be between 0 and 7 days")
        old_key = bytes.fromhex(record.key)
        if not signing.verify(new_key, ROTATION_DOMAIN + old_key + new_key, proof):
            raise RecordError("bad_signature", "the new key did not sign the rotation")
        rotation = Rotation(record.author, new_id, record.issued_ms + grace)
        self._by_old[record.author] = rotation
        return rotation

    def successor(self, node_id: str) -> str | None:
        """The node id that replaced ``node_id``, if it rotated."""
        rotation = self._by_old.get(node_id)
        return rotation.new_id if rotation else None

    def retired(self, node_id: str, now_ms: int) -> bool:
        """Whether ``node_id`` rotated away and its grace window has passed."""
        rotation = self._by_old.get(node_id)
        return rotation is not None and now_ms >= rotation.retire_ms
