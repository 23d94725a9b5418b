# SPDX-License-Identifier: Apache-2.0
# cython: language_level=3, boundscheck=False, wraparound=False
"""Ed25519 key pairs, detached signatures and verification (compiled, over libsodium).

Twin of ``edgecoder/speedups/_pure/signing.py``: same names, signatures, exceptions.
Every libsodium call runs without the GIL.
"""

from libc.string cimport memcpy

from sodium cimport (
    crypto_sign_detached,
    crypto_sign_seed_keypair,
    crypto_sign_verify_detached,
    sodium_init,
)

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

if sodium_init() < 0:
    raise ImportError("libsodium failed to initialise")


cdef inline bytes _require(str name, object value, Py_ssize_t size):
    if type(value) is not bytes:
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if size >= 0 and len(<bytes>value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(<bytes>value)}")
    return <bytes>value


def seed_keypair(seed):
    """Derive the Ed25519 key pair of a 32-byte seed: ``(public_key, secret_key)``."""
    cdef bytes s = _require("seed", seed, 32)
    cdef unsigned char pk[32]
    cdef unsigned char sk[64]
    cdef const unsigned char *sp = s
    with nogil:
        crypto_sign_seed_keypair(pk, sk, sp)
    return (pk[:32], sk[:64])


def sign(secret_key, message):
    """Return the 64-byte detached Ed25519 signature of ``message``."""
    cdef bytes k = _require("secret_key", secret_key, 64)
    cdef bytes m = _require("message", message, -1)
    cdef unsigned char sig[64]
    cdef const unsigned char *kp = k
    cdef const unsigned char *mp = m
    cdef unsigned long long mlen = len(m)
    with nogil:
        crypto_sign_detached(sig, NULL, mp, mlen, kp)
    return sig[:64]


def verify(public_key, message, signature):
    """Tell whether ``signature`` is a valid Ed25519 signature of ``message``."""
    cdef bytes k = _require("public_key", public_key, 32)
    cdef bytes m = _require("message", message, -1)
    cdef bytes s = _require("signature", signature, -1)
    if len(s) != 64:
        return False
    cdef const unsigned char *kp = k
    cdef const unsigned char *mp = m
    cdef const unsigned char *sp = s
    cdef unsigned long long mlen = len(m)
    cdef int rc
    with nogil:
        rc = crypto_sign_verify_detached(sp, mp, mlen, kp)
    return rc == 0
