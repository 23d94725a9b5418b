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

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL

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


cdef inline int _hexval(char c) noexcept nogil:
    if c >= 48 and c <= 57:
        return c - 48
    if c >= 97 and c <= 102:
        return c - 87
    return -1


cdef inline bint _decode_hex(const char *text, Py_ssize_t length, Py_ssize_t n,
                             unsigned char *out) noexcept nogil:
    """Exactly ``2n`` lowercase hex digits into ``out``; False if anything else."""
    cdef Py_ssize_t i
    cdef int hi, lo
    if length != 2 * n:
        return False
    for i in range(n):
        hi = _hexval(text[2 * i])
        lo = _hexval(text[2 * i + 1])
        if hi < 0 or lo < 0:
            return False
        out[i] = <unsigned char>((hi << 4) | lo)
    return True


cdef inline bint _node_id_chars(const char *text, Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t i
    cdef char c
    if length != 32:
        return False
    for i in range(32):
        c = text[i]
        if not ((c >= 97 and c <= 122) or (c >= 50 and c <= 55)):
            return False
    return True


cdef inline bint _parse_digits(const char *text, Py_ssize_t length,
                               long long *value) noexcept nogil:
    cdef Py_ssize_t i
    cdef long long total = 0
    if length == 0 or length > 15:
        return False
    for i in range(length):
        if text[i] < 48 or text[i] > 57:
            return False
        total = total * 10 + (text[i] - 48)
    value[0] = total
    return True


cdef class _Bucket:
    cdef double tokens
    cdef double stamp

    cdef bint take(self, double rate, double burst, double now):
        cdef double tokens = self.tokens + (now - self.stamp) * rate
        if tokens > burst:
            tokens = burst
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


cdef class _Address(_Bucket):
    """A source address's bucket, and the buckets of the senders seen from it."""
    cdef dict senders


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
    cdef dict _addresses
    cdef dict _key_ids
    cdef bytes _own

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
        self._addresses = {}
        self._key_ids = {}

    cdef bint _take(self, str address, str sender, double now):
        cdef _Address place
        cdef _Bucket bucket
        found = self._addresses.get(address)
        if found is None:
            if len(self._addresses) >= self._max_buckets:
                self._addresses.clear()
            place = _Address.__new__(_Address)
            place.tokens = self.address_burst
            place.stamp = now
            place.senders = {}
            self._addresses[address] = place
        else:
            place = <_Address>found
        if not place.take(self.address_rate, self.address_burst, now):
            return False
        found = place.senders.get(sender)
        if found is None:
            if len(place.senders) >= self._max_buckets:
                place.senders.clear()
            bucket = _Bucket.__new__(_Bucket)
            bucket.tokens = self.sender_burst
            bucket.stamp = now
            place.senders[sender] = bucket
        else:
            bucket = <_Bucket>found
        return bucket.take(self.sender_rate, self.sender_burst, now)

    def check(self, str method, str target, sender, key, timestamp, nonce, body_sha256,
              recipient, signature, bytes body, str address, long long now_ms):
        """Check one request; returns "" when it is authentic, else its reason code."""
        cdef Py_ssize_t body_len = len(body)
        if body_len > self.max_body:
            return "too_large"
        if (sender is None or key is None or timestamp is None or nonce is None
                or body_sha256 is None or recipient is None or signature is None):
            return "missing_header"
        cdef Py_ssize_t sender_n, key_n, stamp_n, nonce_n, sha_n, recipient_n, sig_n
        cdef const char *sender_p = PyUnicode_AsUTF8AndSize(sender, &sender_n)
        cdef const char *key_p = PyUnicode_AsUTF8AndSize(key, &key_n)
        cdef const char *stamp_p = PyUnicode_AsUTF8AndSize(timestamp, &stamp_n)
        cdef const char *nonce_p = PyUnicode_AsUTF8AndSize(nonce, &nonce_n)
        cdef const char *sha_p = PyUnicode_AsUTF8AndSize(body_sha256, &sha_n)
        cdef const char *recipient_p = PyUnicode_AsUTF8AndSize(recipient, &recipient_n)
        cdef const char *sig_p = PyUnicode_AsUTF8AndSize(signature, &sig_n)
        cdef unsigned char key_raw[32]
        cdef unsigned char nonce_raw[16]
        cdef unsigned char claimed[32]
        cdef unsigned char sig_raw[64]
        cdef long long stamp = 0
        if not (_node_id_chars(sender_p, sender_n) and _decode_hex(key_p, key_n, 32, key_raw)
                and _decode_hex(nonce_p, nonce_n, 16, nonce_raw)
                and _decode_hex(sha_p, sha_n, 32, claimed)
                and _decode_hex(sig_p, sig_n, 64, sig_raw)
                and _parse_digits(stamp_p, stamp_n, &stamp)):
            return "bad_header"
        if recipient != self.own_node_id:
            return "wrong_recipient"
        if stamp < now_ms - self.skew_ms or stamp > now_ms + self.skew_ms:
            return "skew"
        if stamp < self.not_before_ms:
            return "replay"
        if sender in self.blacklist:
            return "blacklisted"
        if not self._take(address, <str>sender, now_ms / 1000.0):
            return "rate_limited"
        cdef str replay_key = (<str>sender) + ":" + (<str>nonce)
        if replay_key in self.replay._entries:
            return "replay"
        known = self._key_ids.get(key)
        if known is None:
            known = node_id_of(bytes(key_raw[:32]))
            if len(self._key_ids) >= self._max_buckets:
                self._key_ids.clear()
            self._key_ids[key] = known
        if known != sender:
            return "bad_key"
        cdef unsigned char digest[32]
        cdef const unsigned char *body_p = body
        cdef crypto_hash_sha256_state state
        with nogil:
            crypto_hash_sha256_init(&state)
            crypto_hash_sha256_update(&state, body_p, body_len)
            crypto_hash_sha256_final(&state, digest)
        if memcmp(digest, claimed, 32) != 0:
            return "body_hash"
        # The signing string, built in place: DOMAIN then seven fields joined by newlines.
        cdef Py_ssize_t method_n, target_n
        cdef const char *method_p = PyUnicode_AsUTF8AndSize(method, &method_n)
        cdef const char *target_p = PyUnicode_AsUTF8AndSize(target, &target_n)
        cdef Py_ssize_t domain_n = len(_DOMAIN)
        cdef Py_ssize_t total = (domain_n + method_n + target_n + sender_n + recipient_n
                                 + stamp_n + nonce_n + sha_n + 6)
        cdef char small[1024]
        cdef char *buf = small
        cdef bytes spill = None
        if total > 1024:
            spill = PyBytes_FromStringAndSize(NULL, total)
            buf = PyBytes_AS_STRING(spill)
        cdef Py_ssize_t pos = 0
        memcpy(buf, <char *>_DOMAIN, domain_n)
        pos = domain_n
        memcpy(buf + pos, method_p, method_n)
        pos += method_n
        buf[pos] = 10
        memcpy(buf + pos + 1, target_p, target_n)
        pos += 1 + target_n
        buf[pos] = 10
        memcpy(buf + pos + 1, sender_p, sender_n)
        pos += 1 + sender_n
        buf[pos] = 10
        memcpy(buf + pos + 1, recipient_p, recipient_n)
        pos += 1 + recipient_n
        buf[pos] = 10
        memcpy(buf + pos + 1, stamp_p, stamp_n)
        pos += 1 + stamp_n
        buf[pos] = 10
        memcpy(buf + pos + 1, nonce_p, nonce_n)
        pos += 1 + nonce_n
        buf[pos] = 10
        memcpy(buf + pos + 1, sha_p, sha_n)
        cdef int rc
        with nogil:
            rc = crypto_sign_verify_detached(sig_raw, <const unsigned char *>buf, total, key_raw)
        if rc != 0:
            return "bad_signature"
        cdef int added = self.replay.insert(replay_key, stamp, now_ms)
        if added == 0:
            return "replay"
        if added < 0:
            return "rate_limited"
        return ""
