"""Hash-chain links: each entry's hash binds the previous hash and the entry's bytes (pure twin).

``link(prev, body) = SHA-256(DOMAIN || prev || body)`` with the 32-byte previous hash;
the first entry of a chain links to :data:`GENESIS` (32 zero bytes). In a signed chain
each entry's author signs ``SIGN_DOMAIN || link hash`` with Ed25519.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import nacl.bindings
import nacl.exceptions

__all__ = (
    "DOMAIN",
    "GENESIS",
    "HASH_BYTES",
    "SIGN_DOMAIN",
    "link",
    "sign_link",
    "verify",
    "verify_signed",
)

DOMAIN = b"edgecoder/chain/v1\x00"
HASH_BYTES = 32
GENESIS = bytes(HASH_BYTES)
SIGN_DOMAIN = b"edgecoder/chain-entry/v1\x00"


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


def sign_link(secret_key: bytes, link_hash: bytes) -> bytes:
    """The author's signature of one entry's link hash.

    :raises TypeError: an argument is not bytes.
    :raises ValueError: a wrong length.
    """
    _require_hash("link_hash", link_hash)
    if type(secret_key) is not bytes:
        raise TypeError(f"secret_key must be bytes, not {type(secret_key).__name__}")
    if len(secret_key) != 64:
        raise ValueError(f"secret_key must be 64 bytes, got {len(secret_key)}")
    return bytes(nacl.bindings.crypto_sign(SIGN_DOMAIN + link_hash, secret_key)[:64])


def verify_signed(
    prev: bytes,
    bodies: Sequence[bytes],
    hashes: Sequence[bytes],
    signatures: Sequence[bytes],
    public_key: bytes,
) -> int:
    """Check links as :func:`verify` does, and each entry's signature by ``public_key``.

    :raises TypeError: an argument is not bytes (or a sequence of bytes).
    :raises ValueError: lengths differ, or a hash, signature or key has the wrong size.
    :returns: the index of the first entry whose link or signature is wrong, or -1.
    """
    _require_hash("prev", prev)
    if type(public_key) is not bytes:
        raise TypeError(f"public_key must be bytes, not {type(public_key).__name__}")
    if len(public_key) != 32:
        raise ValueError(f"public_key must be 32 bytes, got {len(public_key)}")
    if not len(bodies) == len(hashes) == len(signatures):
        raise ValueError("bodies, hashes and signatures differ in length")
    for signature in signatures:
        if type(signature) is not bytes:
            raise TypeError(f"signature must be bytes, not {type(signature).__name__}")
        if len(signature) != 64:
            raise ValueError(f"signature must be 64 bytes, got {len(signature)}")
    bad = verify(prev, bodies, hashes)
    limit = len(bodies) if bad < 0 else bad
    for index in range(limit):
        try:
            nacl.bindings.crypto_sign_open(
                signatures[index] + SIGN_DOMAIN + hashes[index], public_key
            )
        except nacl.exceptions.BadSignatureError:
            return index
    return bad
