"""Sealing a secret at rest under a passphrase: Argon2id key derivation + XSalsa20-Poly1305.

Derivation is deliberately slow (hundreds of milliseconds, 256 MiB): call
:func:`seal` and :func:`unseal` from a worker thread, never on the event loop.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash
import nacl.secret

from edgecoder.errors import PassphraseError

__all__ = ("KDF_NAME", "Sealed", "seal", "unseal")

KDF_NAME = "argon2id13"
_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed secret with the parameters needed to open it again."""

    salt: bytes
    opslimit: int
    memlimit: int
    box: bytes
    """Nonce followed by ciphertext and tag, as ``nacl.secret.SecretBox`` writes it."""


def _key(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return bytes(
        nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
        )
    )


def seal(secret: bytes, passphrase: bytes) -> Sealed:
    """Encrypt ``secret`` under a key derived from ``passphrase``.

    :raises PassphraseError: the passphrase is empty.
    """
    if not passphrase:
        raise PassphraseError("the passphrase is empty")
    salt = secrets.token_bytes(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_key(passphrase, salt, _OPSLIMIT, _MEMLIMIT))
    return Sealed(salt=salt, opslimit=_OPSLIMIT, memlimit=_MEMLIMIT, box=bytes(box.encrypt(secret)))


def unseal(sealed: Sealed, passphrase: bytes) -> bytes:
    """Decrypt a sealed secret.

    :raises PassphraseError: the passphrase is wrong, or the sealed data was altered.
    """
    key = _key(passphrase, sealed.salt, sealed.opslimit, sealed.memlimit)
    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(sealed.box))
    except nacl.exceptions.CryptoError:
        raise PassphraseError("wrong passphrase (or the sealed key file was altered)") from None
