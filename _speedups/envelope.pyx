# SPDX-License-Identifier: Apache-2.0
# cython: language_level=3, boundscheck=False, wraparound=False
"""Signing and checking mesh requests (compiled, over libsodium).

Twin of ``edgecoder/speedups/_pure/envelope.py``: same names, signatures and codes; the
header shape checks are C loops, hashing and verification run in libsodium without the
GIL.
"""

import base64
import secrets

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcmp, memcpy

from edgecoder.speedups._compiled.replay cimport ReplayCache

from sodium cimport (
    crypto_hash_sha256_final,
    crypto_hash_sha256_init,
    crypto_hash_sha256_state,
    crypto_hash_sha256_update,
    crypto_sign_detached,
    crypto_sign_verify_detached,
    sodium_init,
)

__all__ = (
    "CODES",
    "DOMAIN",
    "RequestVerifier",
    "node_id_of",
    "sign_request",
    "signing_bytes",
)

DOMAIN = b"edgecoder-mesh-request-v1\n"
CODES = (
    "too_large", "missing_header", "bad_header", "wrong_recipient", "skew", "replay",
    "blacklisted", "rate_limited", "bad_key", "body_hash", "bad_signature",
)

cdef bytes _NODE_ID_DOMAIN = b"edgecoder/node-id/v1\x00"
cdef bytes _DOMAIN = DOMAIN
cdef bytes _HEXDIGITS = b"0123456789abcdef"

if sodium_init() < 0:
    raise ImportError("libsodium failed to initialise")


cdef inline bint _is_hex(str text, Py_ssize_t length):
    cdef Py_UCS4 ch
    if len(text) != length:
        return False
    for ch in text:
        if not ((ch >= 48 and ch <= 57) or (ch >= 97 and ch <= 102)):
            return False
    return True


cdef inline bint _is_node_id(str text):
    cdef Py_UCS4 ch
    if len(text) != 32:
        return False
    for ch in text:
        if not ((ch >= 97 and ch <= 122) or (ch >= 50 and ch <= 55)):
            return False
    return True


cdef inline bint _is_timestamp(str text):
    cdef Py_UCS4 ch
    if len(text) == 0 or len(text) > 15:
        return False
    for ch in text:
        if ch < 48 or ch > 57:
            return False
    return True


cdef inline unsigned char _nibble(Py_UCS4 ch) noexcept:
    cdef int code = <int>ch  # arithmetic on Py_UCS4 itself would make a str
    return <unsigned char>(code - 48 if code <= 57 else code - 87)


cdef inline void _unhex(str text, unsigned char *out, Py_ssize_t n):
    """Decode ``2n`` lowercase hex digits already checked by :func:`_is_hex`."""
    cdef Py_ssize_t i
    cdef Py_UCS4 hi, lo
    for i in range(n):
        hi = text[2 * i]
        lo = text[2 * i + 1]
        out[i] = (_nibble(hi) << 4) | _nibble(lo)


cdef inline Py_ssize_t _put_ascii(char *buf, Py_ssize_t pos, str text):
    """Copy a string already checked to be ASCII; returns the new position."""
    cdef Py_UCS4 ch
    for ch in text:
        buf[pos] = <char>ch
        pos += 1
    return pos


cdef class _Bucket:
    cdef double tokens
    cdef double stamp


cdef bytes _sha256(const unsigned char *data, Py_ssize_t length):
    cdef unsigned char out[32]
    cdef crypto_hash_sha256_state state
    with nogil:
        crypto_hash_sha256_init(&state)
        crypto_hash_sha256_update(&state, data, length)
        crypto_hash_sha256_final(&state, out)
    return out[:32]


def node_id_of(public_key):
    """The node id of a 32-byte Ed25519 public key."""
    cdef bytes material = _NODE_ID_DOMAIN + public_key
    digest = _sha256(material, len(material))[:20]
    return base64.b32encode(digest).decode("ascii").lower()


def signing_bytes(str method, str target, str sender, str recipient, timestamp_ms, str nonce,
                  str body_sha256):
    """The exact bytes a request signature covers (``target`` is the path with query)."""
    text = "\n".join((method, target, sender, recipient, str(timestamp_ms), nonce, body_sha256))
    return DOMAIN + text.encode("utf-8")


def sign_request(bytes secret_key, bytes public_key, str method, str target, str recipient,
                 bytes body, timestamp_ms, nonce=None):
    """The envelope headers for one request, signed with ``secret_key``."""
    if len(secret_key) != 64:
        raise ValueError("secret_key must be 64 bytes")
    sender = node_id_of(public_key)
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    body_sha = _sha256(body, len(body)).hex()
    cdef bytes message = signing_bytes(method, target, sender, recipient, timestamp_ms, nonce,
                                       body_sha)
    cdef unsigned char sig[64]
    cdef const unsigned char *mp = message
    cdef const unsigned char *kp = secret_key
    cdef unsigned long long mlen = len(message)
    with nogil:
        crypto_sign_detached(sig, NULL, mp, mlen, kp)
    return {
        "x-ec-sender": sender,
        "x-ec-key": public_key.hex(),
        "x-ec-timestamp": str(timestamp_ms),
        "x-ec-nonce": nonce,
        "x-ec-body-sha256": body_sha,
        "x-ec-recipient": recipient,
        "x-ec-signature": sig[:64].hex(),
    }


cdef class RequestVerifier:
    """The receiving side's checks, with their state: replay cache, buckets, blacklist."""

    cdef public str own_node_id
    cdef public long long skew_ms
    cdef public Py_ssize_t max_body
    cdef public double sender_rate, sender_burst, address_rate, address_burst
    cdef public ReplayCache replay
    cdef public set blacklist
    cdef public long long not_before_ms
    cdef Py_ssize_t _max_buckets
    cdef dict _buckets
    cdef dict _key_ids

    def __init__(self, str own_node_id, *, long long skew_ms, Py_ssize_t max_body,
                 double sender_rate, double sender_burst, double address_rate,
                 double address_burst, Py_ssize_t replay_capacity,
                 Py_ssize_t max_buckets=65536):
        self.own_node_id = own_node_id
        self.skew_ms = skew_ms
        self.max_body = max_body
        self.sender_rate = sender_rate
        self.sender_burst = sender_burst
        self.address_rate = address_rate
        self.address_burst = address_burst
        self.replay = ReplayCache(replay_capacity, skew_ms)
        self.blacklist = set()
        self.not_before_ms = 0
        self._max_buckets = max_buckets
        self._buckets = {}
        self._key_ids = {}

    cdef bint _take(self, str key, double rate, double burst, long long now_ms):
        cdef double now = now_ms / 1000.0
        cdef double tokens
        cdef _Bucket bucket
        found = self._buckets.get(key)
        if found is None:
            if len(self._buckets) >= self._max_buckets:
                self._buckets.clear()
            bucket = _Bucket.__new__(_Bucket)
            bucket.tokens = burst - 1.0
            bucket.stamp = now
            self._buckets[key] = bucket
            return True
        bucket = <_Bucket>found
        tokens = bucket.tokens + (now - bucket.stamp) * rate
        if tokens > burst:
            tokens = burst
        bucket.stamp = now
        if tokens >= 1.0:
            bucket.tokens = tokens - 1.0
            return True
        bucket.tokens = tokens
        return False

    def check(self, str method, str target, sender, key, timestamp, nonce, body_sha256,
              recipient, signature, bytes body, str address, long long now_ms):
        """Check one request; returns "" when it is authentic, else its reason code."""
        if len(body) > self.max_body:
            return "too_large"
        if (sender is None or key is None or timestamp is None or nonce is None
                or body_sha256 is None or recipient is None or signature is None):
            return "missing_header"
        if not (_is_node_id(sender) and _is_hex(key, 64) and _is_hex(nonce, 32)
                and _is_hex(body_sha256, 64) and _is_hex(signature, 128)
                and _is_timestamp(timestamp)):
            return "bad_header"
        if recipient != self.own_node_id:
            return "wrong_recipient"
        cdef long long stamp = int(timestamp)
        if stamp < now_ms - self.skew_ms or stamp > now_ms + self.skew_ms:
            return "skew"
        if stamp < self.not_before_ms:
            return "replay"
        if sender in self.blacklist:
            return "blacklisted"
        if not self._take(address, self.address_rate, self.address_burst, now_ms):
            return "rate_limited"
        if not self._take(sender + "@" + address, self.sender_rate, self.sender_burst, now_ms):
            return "rate_limited"
        cdef str replay_key = sender + ":" + nonce
        if replay_key in self.replay._entries:
            return "replay"
        known = self._key_ids.get(key)
        if known is None:
            known = node_id_of(bytes.fromhex(key))
            if len(self._key_ids) >= self._max_buckets:
                self._key_ids.clear()
            self._key_ids[key] = known
        if known != sender:
            return "bad_key"
        cdef unsigned char digest[32]
        cdef unsigned char claimed[32]
        cdef unsigned char key_raw[32]
        cdef unsigned char sig_raw[64]
        cdef const unsigned char *body_p = body
        cdef Py_ssize_t body_len = len(body)
        cdef crypto_hash_sha256_state state
        with nogil:
            crypto_hash_sha256_init(&state)
            crypto_hash_sha256_update(&state, body_p, body_len)
            crypto_hash_sha256_final(&state, digest)
        _unhex(body_sha256, claimed, 32)
        if memcmp(digest, claimed, 32) != 0:
            return "body_hash"
        # The signing string, built in place: DOMAIN + seven fields joined by newlines.
        cdef bytes method_b = method.encode("utf-8")
        cdef bytes target_b = target.encode("utf-8")
        cdef str stamp_text = <str>timestamp
        cdef Py_ssize_t total = (len(_DOMAIN) + len(method_b) + len(target_b) + 32 + 32
                                 + len(stamp_text) + 32 + 64 + 6)
        cdef bytes message = PyBytes_FromStringAndSize(NULL, total)
        cdef char *buf = PyBytes_AS_STRING(message)
        cdef Py_ssize_t pos = len(_DOMAIN)
        memcpy(buf, <char *>_DOMAIN, pos)
        memcpy(buf + pos, <char *>method_b, len(method_b))
        pos += len(method_b)
        buf[pos] = 10
        pos += 1
        memcpy(buf + pos, <char *>target_b, len(target_b))
        pos += len(target_b)
        buf[pos] = 10
        pos = _put_ascii(buf, pos + 1, <str>sender)
        buf[pos] = 10
        pos = _put_ascii(buf, pos + 1, <str>recipient)
        buf[pos] = 10
        pos = _put_ascii(buf, pos + 1, stamp_text)
        buf[pos] = 10
        pos = _put_ascii(buf, pos + 1, <str>nonce)
        buf[pos] = 10
        pos = _put_ascii(buf, pos + 1, <str>body_sha256)
        _unhex(key, key_raw, 32)
        _unhex(signature, sig_raw, 64)
        cdef const unsigned char *mp = <const unsigned char *>buf
        cdef int rc
        with nogil:
            rc = crypto_sign_verify_detached(sig_raw, mp, total, key_raw)
        if rc != 0:
            return "bad_signature"
        cdef int added = self.replay.insert(replay_key, stamp, now_ms)
        if added == 0:
            return "replay"
        if added < 0:
            return "rate_limited"
        return ""
