"""Sealed task payloads: prompts and outputs readable only by the node they are sealed to.

Ephemeral-static X25519 to the recipient's key (converted from its Ed25519 node key, so a
node publishes one identity), HKDF-SHA256, then XChaCha20-Poly1305 with the task id as
associated data, so a payload sealed for one task cannot be passed off as another's.
No AES: a Raspberry Pi has no AES instructions, ChaCha is fast everywhere.

Wire form: ``0x01 || ephemeral public key (32) || nonce (24) || ciphertext + tag (16)``.
Specified, with test vectors, in ``docs/protocol.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import nacl.bindings
import nacl.exceptions

from edgecoder.errors import PayloadError
from edgecoder.security.identity import NodeIdentity

__all__ = ("INFO", "OVERHEAD", "VERSION", "open_sealed", "seal", "x25519_public")

VERSION = 1
INFO = b"edgecoder-seal-v1"
_NONCE = 24
_TAG = 16
OVERHEAD = 1 + 32 + _NONCE + _TAG
"""Bytes a sealed payload adds to its plaintext."""


def x25519_public(ed25519_public: bytes) -> bytes:
    """The X25519 public key that belongs to an Ed25519 node key."""
    return bytes(nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_public))


def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869)."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    if not any(shared):
        raise PayloadError(
            "bad_payload", "key agreement gave an all-zero secret (a low-order public key)"
        )
    return _hkdf(shared, ephemeral_public + recipient_public, INFO)


def _associated(task_id: str) -> bytes:
    return INFO + b"\x00" + task_id.encode("utf-8")


def seal(
    recipient: bytes,
    task_id: str,
    plaintext: bytes,
    *,
    ephemeral_secret: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Seal ``plaintext`` for the node whose Ed25519 public key is ``recipient``.

    ``ephemeral_secret`` and ``nonce`` exist for test vectors only; leave them unset.

    :raises PayloadError: ``recipient`` is not a usable public key.
    """
    try:
        recipient_x = x25519_public(recipient)
    except (nacl.exceptions.CryptoError, TypeError, ValueError):
        raise PayloadError(
            "bad_key", "the recipient's public key is not a valid Ed25519 key"
        ) from None
    secret = ephemeral_secret if ephemeral_secret is not None else secrets.token_bytes(32)
    nonce = nonce if nonce is not None else secrets.token_bytes(_NONCE)
    ephemeral_public = bytes(nacl.bindings.crypto_scalarmult_base(secret))
    shared = bytes(nacl.bindings.crypto_scalarmult(secret, recipient_x))
    key = _key(shared, ephemeral_public, recipient_x)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, _associated(task_id), nonce, key
    )
    return bytes([VERSION]) + ephemeral_public + nonce + bytes(ciphertext)


def open_sealed(identity: NodeIdentity, task_id: str, sealed: bytes) -> bytes:
    """Open a payload sealed to ``identity`` for ``task_id``.

    :raises PayloadError: malformed, sealed to another node or task, or altered.
    """
    if len(sealed) < OVERHEAD or sealed[0] != VERSION:
        raise PayloadError("bad_payload", "not a sealed payload of version 1")
    ephemeral_public = sealed[1:33]
    nonce = sealed[33 : 33 + _NONCE]
    ciphertext = sealed[33 + _NONCE :]
    own_secret = bytes(nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(identity.secret_key))
    own_public = x25519_public(identity.public_key)
    try:
        shared = bytes(nacl.bindings.crypto_scalarmult(own_secret, ephemeral_public))
    except nacl.exceptions.CryptoError:
        raise PayloadError("bad_payload", "the sealed payload's ephemeral key is invalid") from None
    key = _key(shared, ephemeral_public, own_public)
    try:
        return bytes(
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                ciphertext, _associated(task_id), nonce, key
            )
        )
    except nacl.exceptions.CryptoError:
        raise PayloadError(
            "bad_payload", "cannot open the payload: sealed to another node or task, or altered"
        ) from None
