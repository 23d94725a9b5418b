"""Sealing a task's result stream: one symmetric key per attempt, one box per event.

The origin draws a fresh 32-byte key for every attempt and sends it inside the payload
it seals to the grantee (:mod:`edgecoder.security.payloads`), so only those two nodes
hold it. Each event the worker streams back is encrypted with XChaCha20-Poly1305 under
that key, with ``task id || attempt || sequence number`` as associated data: an event
cannot be read by a relay, altered, moved to another task or attempt, replayed, dropped
or reordered without the origin noticing.

Wire form of one event: ``nonce (24) || ciphertext + tag (16)``, base64 in the stream.
"""

from __future__ import annotations

import secrets

import nacl.bindings
import nacl.exceptions

from edgecoder.errors import PayloadError

__all__ = ("KEY_BYTES", "StreamBox", "new_stream_key")

KEY_BYTES = 32
_NONCE = 24
_DOMAIN = b"edgecoder-stream-v1\x00"


def new_stream_key() -> bytes:
    """A fresh key for one attempt's result stream."""
    return secrets.token_bytes(KEY_BYTES)


class StreamBox:
    """Encrypts (worker) or decrypts (origin) the events of one attempt, in order."""

    def __init__(self, key: bytes, task_id: str, attempt: int) -> None:
        if len(key) != KEY_BYTES:
            raise PayloadError("bad_key", f"a stream key is {KEY_BYTES} bytes")
        self._key = key
        self._prefix = _DOMAIN + f"{task_id}\x00{attempt}\x00".encode()
        self._sent = 0
        self._received = 0

    def _associated(self, seq: int) -> bytes:
        return self._prefix + str(seq).encode()

    def seal(self, plaintext: bytes) -> bytes:
        """The next event, encrypted."""
        nonce = secrets.token_bytes(_NONCE)
        box = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, self._associated(self._sent), nonce, self._key
        )
        self._sent += 1
        return nonce + bytes(box)

    def open(self, sealed: bytes) -> bytes:
        """The next event in order, decrypted.

        :raises PayloadError: altered, out of order, or from another task or attempt.
        """
        if len(sealed) < _NONCE + 16:
            raise PayloadError("bad_event", "a stream event is too short to be sealed")
        try:
            plaintext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed[_NONCE:], self._associated(self._received), sealed[:_NONCE], self._key
            )
        except nacl.exceptions.CryptoError:
            raise PayloadError(
                "bad_event",
                "a stream event failed authentication (altered, reordered or misdirected)",
            ) from None
        self._received += 1
        return bytes(plaintext)
