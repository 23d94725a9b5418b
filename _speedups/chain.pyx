# SPDX-License-Identifier: Apache-2.0
# cython: language_level=3, boundscheck=False, wraparound=False
"""Hash-chain links (compiled, over libsodium's SHA-256).

Twin of ``edgecoder/speedups/_pure/chain.py``. :func:`verify` checks a whole run of
links without the GIL, so several threads verify segments of a long chain at once.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc

from libc.string cimport memcpy

from sodium cimport (
    crypto_sign_detached,
    crypto_sign_verify_detached,
    crypto_hash_sha256_final,
    crypto_hash_sha256_init,
    crypto_hash_sha256_state,
    crypto_hash_sha256_update,
    sodium_init,
    sodium_memcmp,
)

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
GENESIS = bytes(32)
SIGN_DOMAIN = b"edgecoder/chain-entry/v1\x00"
cdef bytes _SIGN_DOMAIN = SIGN_DOMAIN
cdef enum:
    _SIGN_DOMAIN_LEN = 25

cdef bytes _DOMAIN = DOMAIN
cdef const unsigned char *_domain_p = _DOMAIN
cdef unsigned long long _domain_len = len(_DOMAIN)

if sodium_init() < 0:
    raise ImportError("libsodium failed to initialise")


cdef inline bytes _require_hash(str name, object value):
    if type(value) is not bytes:
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(<bytes>value) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {len(<bytes>value)}")
    return <bytes>value


cdef inline void _link(const unsigned char *prev, const unsigned char *body,
                       unsigned long long body_len, unsigned char *out) noexcept nogil:
    cdef crypto_hash_sha256_state state
    crypto_hash_sha256_init(&state)
    crypto_hash_sha256_update(&state, _domain_p, _domain_len)
    crypto_hash_sha256_update(&state, prev, 32)
    crypto_hash_sha256_update(&state, body, body_len)
    crypto_hash_sha256_final(&state, out)


cdef void _require_entries(list body_list, list hash_list) except *:
    """Every body is bytes and every stored hash is 32 bytes (lists of equal length)."""
    cdef Py_ssize_t i
    for i in range(len(body_list)):
        if type(body_list[i]) is not bytes:
            raise TypeError(f"body must be bytes, not {type(body_list[i]).__name__}")
        _require_hash("hash", hash_list[i])


def link(prev, body):
    """Return the hash of the entry ``body`` that follows the entry hashed ``prev``."""
    cdef bytes p = _require_hash("prev", prev)
    if type(body) is not bytes:
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    cdef bytes b = <bytes>body
    cdef unsigned char out[32]
    cdef const unsigned char *pp = p
    cdef const unsigned char *bp = b
    cdef unsigned long long blen = len(b)
    with nogil:
        _link(pp, bp, blen, out)
    return out[:32]


def verify(prev, bodies, hashes):
    """Index of the first entry whose stored hash is wrong, or -1 when every link holds."""
    cdef bytes start = _require_hash("prev", prev)
    cdef list body_list = list(bodies)
    cdef list hash_list = list(hashes)
    cdef Py_ssize_t n = len(body_list)
    if n != len(hash_list):
        raise ValueError("bodies and hashes differ in length")
    cdef Py_ssize_t i
    _require_entries(body_list, hash_list)
    if n == 0:
        return -1
    cdef const unsigned char **body_p = <const unsigned char **>PyMem_Malloc(n * sizeof(void *))
    cdef const unsigned char **hash_p = <const unsigned char **>PyMem_Malloc(n * sizeof(void *))
    cdef unsigned long long *body_len = <unsigned long long *>PyMem_Malloc(
        n * sizeof(unsigned long long))
    if body_p == NULL or hash_p == NULL or body_len == NULL:
        PyMem_Free(body_p)
        PyMem_Free(hash_p)
        PyMem_Free(body_len)
        raise MemoryError()
    cdef Py_ssize_t bad = -1
    cdef const unsigned char *prev_p = start
    cdef unsigned char out[32]
    try:
        # The lists keep every bytes object alive while the GIL is released.
        for i in range(n):
            body_p[i] = <bytes>body_list[i]
            body_len[i] = len(<bytes>body_list[i])
            hash_p[i] = <bytes>hash_list[i]
        with nogil:
            for i in range(n):
                _link(prev_p, body_p[i], body_len[i], out)
                if sodium_memcmp(out, hash_p[i], 32) != 0:
                    bad = i
                    break
                prev_p = hash_p[i]
    finally:
        PyMem_Free(body_p)
        PyMem_Free(hash_p)
        PyMem_Free(body_len)
    return bad


def sign_link(secret_key, link_hash):
    """The author's signature of one entry's link hash."""
    cdef bytes h = _require_hash("link_hash", link_hash)
    if type(secret_key) is not bytes:
        raise TypeError(f"secret_key must be bytes, not {type(secret_key).__name__}")
    if len(<bytes>secret_key) != 64:
        raise ValueError(f"secret_key must be 64 bytes, got {len(<bytes>secret_key)}")
    cdef bytes message = SIGN_DOMAIN + h
    cdef unsigned char sig[64]
    cdef const unsigned char *mp = message
    cdef const unsigned char *kp = <bytes>secret_key
    with nogil:
        crypto_sign_detached(sig, NULL, mp, _SIGN_DOMAIN_LEN + 32, kp)
    return sig[:64]


def verify_signed(prev, bodies, hashes, signatures, public_key):
    """Links and signatures in one pass without the GIL; index of the first bad entry or -1."""
    cdef bytes start = _require_hash("prev", prev)
    if type(public_key) is not bytes:
        raise TypeError(f"public_key must be bytes, not {type(public_key).__name__}")
    if len(<bytes>public_key) != 32:
        raise ValueError(f"public_key must be 32 bytes, got {len(<bytes>public_key)}")
    cdef list body_list = list(bodies)
    cdef list hash_list = list(hashes)
    cdef list sig_list = list(signatures)
    cdef Py_ssize_t n = len(body_list)
    if n != len(hash_list) or n != len(sig_list):
        raise ValueError("bodies, hashes and signatures differ in length")
    cdef Py_ssize_t i
    _require_entries(body_list, hash_list)
    for i in range(n):
        if type(sig_list[i]) is not bytes:
            raise TypeError(f"signature must be bytes, not {type(sig_list[i]).__name__}")
        if len(<bytes>sig_list[i]) != 64:
            raise ValueError(f"signature must be 64 bytes, got {len(<bytes>sig_list[i])}")
    if n == 0:
        return -1
    cdef const unsigned char **body_p = <const unsigned char **>PyMem_Malloc(n * sizeof(void *))
    cdef const unsigned char **hash_p = <const unsigned char **>PyMem_Malloc(n * sizeof(void *))
    cdef const unsigned char **sig_p = <const unsigned char **>PyMem_Malloc(n * sizeof(void *))
    cdef unsigned long long *body_len = <unsigned long long *>PyMem_Malloc(
        n * sizeof(unsigned long long))
    if body_p == NULL or hash_p == NULL or sig_p == NULL or body_len == NULL:
        PyMem_Free(body_p)
        PyMem_Free(hash_p)
        PyMem_Free(sig_p)
        PyMem_Free(body_len)
        raise MemoryError()
    cdef Py_ssize_t bad = -1
    cdef const unsigned char *prev_p = start
    cdef const unsigned char *key_p = <bytes>public_key
    cdef const unsigned char *domain_p = _SIGN_DOMAIN
    cdef unsigned char out[32]
    cdef unsigned char message[_SIGN_DOMAIN_LEN + 32]
    try:
        for i in range(n):
            body_p[i] = <bytes>body_list[i]
            body_len[i] = len(<bytes>body_list[i])
            hash_p[i] = <bytes>hash_list[i]
            sig_p[i] = <bytes>sig_list[i]
        with nogil:
            memcpy(message, domain_p, _SIGN_DOMAIN_LEN)
            for i in range(n):
                _link(prev_p, body_p[i], body_len[i], out)
                if sodium_memcmp(out, hash_p[i], 32) != 0:
                    bad = i
                    break
                memcpy(message + _SIGN_DOMAIN_LEN, hash_p[i], 32)
                if crypto_sign_verify_detached(sig_p[i], message, _SIGN_DOMAIN_LEN + 32,
                                               key_p) != 0:
                    bad = i
                    break
                prev_p = hash_p[i]
    finally:
        PyMem_Free(body_p)
        PyMem_Free(hash_p)
        PyMem_Free(sig_p)
        PyMem_Free(body_len)
    return bad

