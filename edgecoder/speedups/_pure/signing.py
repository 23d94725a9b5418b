"""Ed25519 key pairs, detached signatures and verification (pure twin, over PyNaCl)."""

from __future__ import annotations

import nacl.bindings
import nacl.exceptions

__all__ = (
    "PUBLIC_KEY_BYTES",
    "SECRET_KEY_BYTES",
    "SEED_BYTES",
    "SIGNATURE_BYTES",
    "seed_keypair",
    "sign",
    "verify",
)

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SECRET_KEY_BYTES = 64
SIGNATURE_BYTES = 64


def _require(name: str, value: object, size: int | None) -> bytes:
    if type(value) is not bytes:
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if size is not None and len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    return value


def seed_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """Derive the Ed25519 key pair of a 32-byte seed.

    :raises TypeError: ``seed`` is not bytes.
    :raises ValueError: ``seed`` is not 32 bytes.
    :returns: ``(public_key, secret_key)``, 32 and 64 bytes.
    """
    _require("seed", seed, SEED_BYTES)
    public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
    return bytes(public_key), bytes(secret_key)


def sign(secret_key: bytes, message: bytes) -> bytes:
    """Return the 64-byte detached Ed25519 signature of ``message``.

    :raises TypeError: an argument is not bytes.
    :raises ValueError: ``secret_key`` is not 64 bytes.
    """
    _require("secret_key", secret_key, SECRET_KEY_BYTES)
    _require("message", message, None)
    return bytes(nacl.bindings.crypto_sign(message, secret_key)[:SIGNATURE_BYTES])


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Tell whether ``signature`` is a valid Ed25519 signature of ``message``.

    A signature of the wrong length is simply invalid (``False``); a key of the
    wrong length is a caller's error.

    :raises TypeError: an argument is not bytes.
    :raises ValueError: ``public_key`` is not 32 bytes.
    """
    _require("public_key", public_key, PUBLIC_KEY_BYTES)
    _require("message", message, None)
    _require("signature", signature, None)
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except nacl.exceptions.BadSignatureError:
        return False
    return True
