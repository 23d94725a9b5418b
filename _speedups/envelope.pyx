# SPDX-License-Identifier: Apache-2.0
# cython: language_level=3, boundscheck=False, wraparound=False
"""Signing and checking mesh requests (compiled, over libsodium).

Twin of ``edgecoder/speedups/_pure/envelope.py``: same names, signatures and codes; the
header shape checks are C loops, hashing and verification run in libsodium without the
GIL.
"""

import base64
import secrets

from edgecoder.speedups._compiled.replay import ReplayCache

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


cdef bytes _sha256(const unsigned char *data, Py_ssize_t length):
    cdef unsigned char out[32]
    cdef crypto_hash_sha256_state state
    with nogil:
        crypto_hash_sha256_init(&state)
        crypto_hash_sha256_update(&state, data, length)
        crypto_hash_sha256_final(&state, out)
    return out[:32]


cdef str _hex(bytes raw):
    return raw.hex()


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
    cdef public object replay
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
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._buckets.clear()
            self._buckets[key] = [burst - 1.0, now]
            return True
        tokens = min(burst, <double>bucket[0] + (now - <double>bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
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
        if self.replay.seen(sender, nonce):
            return "replay"
        cdef bytes key_raw = bytes.fromhex(key)
        known = self._key_ids.get(key)
        if known is None:
            known = node_id_of(key_raw)
            if len(self._key_ids) >= self._max_buckets:
                self._key_ids.clear()
            self._key_ids[key] = known
        if known != sender:
            return "bad_key"
        if _sha256(body, len(body)).hex() != body_sha256:
            return "body_hash"
        cdef bytes message = signing_bytes(method, target, sender, recipient, stamp, nonce,
                                           body_sha256)
        cdef bytes sig_raw = bytes.fromhex(signature)
        cdef const unsigned char *sp = sig_raw
        cdef const unsigned char *mp = message
        cdef const unsigned char *kp = key_raw
        cdef unsigned long long mlen = len(message)
        cdef int rc
        with nogil:
            rc = crypto_sign_verify_detached(sp, mp, mlen, kp)
        if rc != 0:
            return "bad_signature"
        try:
            if not self.replay.add(sender, nonce, stamp, now_ms):
                return "replay"
        except OverflowError:
            return "rate_limited"
        return ""
