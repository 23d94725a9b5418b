"""Signing and checking mesh requests: the envelope every node-to-node request carries (pure twin).

A request carries seven headers (see ``docs/protocol.md``): sender node id, sender public
key, timestamp (ms), 128-bit nonce, SHA-256 of the exact body, recipient node id, and an
Ed25519 signature over :func:`signing_bytes`. :class:`RequestVerifier` checks them
cheapest first and returns a reason code instead of raising, so a flood of junk costs
little: size → header shape → recipient → clock skew → blacklist → rate limits (per
source address, then per claimed sender at that address) → replay cache → key binding
→ body hash → signature. Only a request that passes everything is recorded in the replay
cache.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

import nacl.bindings
import nacl.exceptions

from edgecoder.speedups._pure.replay import ReplayCache

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
)  # fmt: skip
"""Every reason a request can be refused, in the order they are checked."""

_NODE_ID_DOMAIN = b"edgecoder/node-id/v1\x00"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_NODE_ID = re.compile(r"[a-z2-7]{32}")


def node_id_of(public_key: bytes) -> str:
    """The node id of a 32-byte Ed25519 public key."""
    digest = hashlib.sha256(_NODE_ID_DOMAIN + public_key).digest()[:20]
    return base64.b32encode(digest).decode("ascii").lower()


def signing_bytes(
    method: str,
    target: str,
    sender: str,
    recipient: str,
    timestamp_ms: int,
    nonce: str,
    body_sha256: str,
) -> bytes:
    """The exact bytes a request signature covers (``target`` is the path with query)."""
    text = "\n".join((method, target, sender, recipient, str(timestamp_ms), nonce, body_sha256))
    return DOMAIN + text.encode("utf-8")


def sign_request(
    secret_key: bytes,
    public_key: bytes,
    method: str,
    target: str,
    recipient: str,
    body: bytes,
    timestamp_ms: int,
    nonce: str | None = None,
) -> dict[str, str]:
    """The envelope headers for one request, signed with ``secret_key``."""
    sender = node_id_of(public_key)
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    body_sha = hashlib.sha256(body).hexdigest()
    message = signing_bytes(method, target, sender, recipient, timestamp_ms, nonce, body_sha)
    signature = nacl.bindings.crypto_sign(message, secret_key)[:64]
    return {
        "x-ec-sender": sender,
        "x-ec-key": public_key.hex(),
        "x-ec-timestamp": str(timestamp_ms),
        "x-ec-nonce": nonce,
        "x-ec-body-sha256": body_sha,
        "x-ec-recipient": recipient,
        "x-ec-signature": bytes(signature).hex(),
    }


class RequestVerifier:
    """The receiving side's checks, with their state: replay cache, buckets, blacklist."""

    def __init__(
        self,
        own_node_id: str,
        *,
        skew_ms: int,
        max_body: int,
        sender_rate: float,
        sender_burst: float,
        address_rate: float,
        address_burst: float,
        replay_capacity: int,
        max_buckets: int = 65_536,
    ) -> None:
        self.own_node_id = own_node_id
        self.skew_ms = skew_ms
        self.max_body = max_body
        self.sender_rate = sender_rate
        self.sender_burst = sender_burst
        self.address_rate = address_rate
        self.address_burst = address_burst
        self.replay = ReplayCache(replay_capacity, skew_ms)
        self.blacklist: set[str] = set()
        self.not_before_ms = 0
        """Requests signed earlier are refused as possible replays (after an unclean stop)."""
        self._max_buckets = max_buckets
        self._buckets: dict[str, list[float]] = {}
        self._key_ids: dict[str, str] = {}

    def _take(self, key: str, rate: float, burst: float, now_ms: int) -> bool:
        bucket = self._buckets.get(key)
        now = now_ms / 1000.0
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._buckets.clear()
            self._buckets[key] = [burst - 1.0, now]
            return True
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False

    def check(
        self,
        method: str,
        target: str,
        sender: str | None,
        key: str | None,
        timestamp: str | None,
        nonce: str | None,
        body_sha256: str | None,
        recipient: str | None,
        signature: str | None,
        body: bytes,
        address: str,
        now_ms: int,
    ) -> str:
        """Check one request; returns "" when it is authentic, else its reason code."""
        if len(body) > self.max_body:
            return "too_large"
        if (
            sender is None or key is None or timestamp is None or nonce is None
            or body_sha256 is None or recipient is None or signature is None
        ):  # fmt: skip
            return "missing_header"
        if not (
            _NODE_ID.fullmatch(sender) and _HEX64.fullmatch(key) and _HEX32.fullmatch(nonce)
            and _HEX64.fullmatch(body_sha256) and _HEX128.fullmatch(signature)
            and timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 15
        ):  # fmt: skip
            return "bad_header"
        if recipient != self.own_node_id:
            return "wrong_recipient"
        stamp = int(timestamp)
        if stamp < now_ms - self.skew_ms or stamp > now_ms + self.skew_ms:
            return "skew"
        if stamp < self.not_before_ms:
            return "replay"
        if sender in self.blacklist:
            return "blacklisted"
        if not self._take(address, self.address_rate, self.address_burst, now_ms):
            return "rate_limited"
        if not self._take(f"{sender}@{address}", self.sender_rate, self.sender_burst, now_ms):
            return "rate_limited"
        if self.replay.seen(sender, nonce):
            return "replay"
        known = self._key_ids.get(key)
        if known is None:
            known = node_id_of(bytes.fromhex(key))
            if len(self._key_ids) >= self._max_buckets:
                self._key_ids.clear()
            self._key_ids[key] = known
        if known != sender:
            return "bad_key"
        if hashlib.sha256(body).hexdigest() != body_sha256:
            return "body_hash"
        message = signing_bytes(method, target, sender, recipient, stamp, nonce, body_sha256)
        try:
            nacl.bindings.crypto_sign_open(bytes.fromhex(signature) + message, bytes.fromhex(key))
        except nacl.exceptions.BadSignatureError:
            return "bad_signature"
        try:
            if not self.replay.add(sender, nonce, stamp, now_ms):
                return "replay"
        except OverflowError:
            return "rate_limited"
        return ""
