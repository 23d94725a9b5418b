"""Hash-chain links: each entry's hash binds the previous hash and the entry's bytes (pure twin).

``link(prev, body) = SHA-256(DOMAIN || prev || body)`` with the 32-byte previous hash;
the first entry of a chain links to :data:`GENESIS` (32 zero bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ("DOMAIN", "GENESIS", "HASH_BYTES", "link", "verify")

DOMAIN = b"edgecoder/chain/v1\x00"
HASH_BYTES = 32
GENESIS = bytes(HASH_BYTES)


def _require_hash(name: str, value: object) -> bytes:
    if type(value) is not bytes:
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != HASH_BYTES:
        raise ValueError(f"{name} must be {HASH_BYTES} bytes, got {len(value)}")
    return value


def link(prev: bytes, body: bytes) -> bytes:
    """Return the hash of the entry ``body`` that follows the entry hashed ``prev``.

    :raises TypeError: an argument is not bytes.
    :raises ValueError: ``prev`` is not 32 bytes.
    """
    _require_hash("prev", prev)
    if type(body) is not bytes:
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    digest = hashlib.sha256(DOMAIN)
    digest.update(prev)
    digest.update(body)
    return digest.digest()


def verify(prev: bytes, bodies: Sequence[bytes], hashes: Sequence[bytes]) -> int:
    """Check that ``hashes[i] == link(hashes[i-1], bodies[i])``, starting from ``prev``.

    :raises TypeError: an argument is not bytes (or a sequence of bytes).
    :raises ValueError: the sequences differ in length, or a hash is not 32 bytes.
    :returns: the index of the first entry whose hash is wrong, or -1 when all hold.
    """
    _require_hash("prev", prev)
    if len(bodies) != len(hashes):
        raise ValueError("bodies and hashes differ in length")
    for body, stored in zip(bodies, hashes, strict=True):
        if type(body) is not bytes:
            raise TypeError(f"body must be bytes, not {type(body).__name__}")
        _require_hash("hash", stored)
    for index, (body, stored) in enumerate(zip(bodies, hashes, strict=True)):
        digest = hashlib.sha256(DOMAIN)
        digest.update(prev)
        digest.update(body)
        if digest.digest() != stored:
            return index
        prev = stored
    return -1
