"""The mesh listener's gatekeeper: the request verifier, its audit trail, and what peers
have proven about each other.

Wraps the compiled (or pure) :class:`RequestVerifier` with the node's clock and records
every refusal, by its reason code, in :class:`SecurityAudit` (the transport adapter says
how each code is answered). Signed records that change who may speak are applied here:
a blacklist entry whose evidence verifies denies the accused; a key rotation retires the
old key after its grace window (refused as ``retired_key``). Other records go to the
:class:`RecordStore` for gossip.
Its :class:`~edgecoder.mesh.load.LoadGauge` says which requests to shed while the node is
too far behind to answer them in time.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecoder.clock import Clock
from edgecoder.config import MeshConfig
from edgecoder.mesh.load import LoadGauge
from edgecoder.mesh.peer_info import PEER
from edgecoder.security.audit import SecurityAudit
from edgecoder.security.blacklist import Blacklist
from edgecoder.security.rotation import KeyRotations
from edgecoder.speedups import envelope
from edgecoder.wire.records import RecordStore, SignedRecord

__all__ = ("HEADERS", "MeshGuard", "PeerHeaders")

HEADERS = (
    "x-ec-sender",
    "x-ec-key",
    "x-ec-timestamp",
    "x-ec-nonce",
    "x-ec-body-sha256",
    "x-ec-recipient",
    "x-ec-signature",
)
"""The envelope headers, in the order :meth:`RequestVerifier.check` takes them."""


@dataclass(frozen=True, slots=True)
class PeerHeaders:
    """The envelope header values of one request (None where absent)."""

    sender: str | None
    key: str | None
    timestamp: str | None
    nonce: str | None
    body_sha256: str | None
    recipient: str | None
    signature: str | None


class MeshGuard:
    """Checks signed mesh requests against this node's state."""

    def __init__(self, own_node_id: str, config: MeshConfig, clock: Clock) -> None:
        self.clock = clock
        self.max_body = config.max_body_bytes
        self.verifier = envelope.RequestVerifier(
            own_node_id,
            skew_ms=config.skew_ms,
            max_body=config.max_body_bytes,
            sender_rate=float(config.peer_rate_per_s),
            sender_burst=float(config.peer_burst),
            address_rate=float(config.address_rate_per_s),
            address_burst=float(config.address_burst),
            replay_capacity=config.replay_capacity,
        )
        self.verifier.blacklist.update(config.deny)
        self.audit = SecurityAudit()
        self.blacklist = Blacklist()
        self.rotations = KeyRotations()
        self.records = RecordStore()
        self.load = LoadGauge(
            offer_lag_ms=config.shed_offers_lag_ms,
            gossip_lag_ms=config.shed_gossip_lag_ms,
            max_in_flight=config.max_requests_in_progress,
        )

    def peer_key(self, node_id: str) -> bytes | None:
        """A peer's public key, from the signed peer record this node holds for it."""
        record = self.records.get(node_id, PEER)
        if record is None:
            return None
        try:
            return bytes.fromhex(record.key)
        except ValueError:
            return None

    def apply(self, record: SignedRecord) -> str:
        """Verify and apply one record from a peer; returns what became of it.

        :raises RecordError: the record does not verify.
        :raises BlacklistError: a blacklist entry out of order or without valid evidence.
        """
        now = self.clock.now_ms()
        if record.kind == "blacklist":
            self.blacklist.accept(record)
            self.verifier.blacklist.add(str(record.body["accused"]))
            return "applied"
        if record.kind == "key_rotation":
            self.rotations.accept(record, now)
            return "applied"
        return self.records.offer(record, now)

    def check(
        self, method: str, target: str, headers: PeerHeaders, body: bytes, address: str
    ) -> str:
        """ "" when the request is authentic, else its reason code (already audited)."""
        code: str = self.verifier.check(
            method,
            target,
            headers.sender,
            headers.key,
            headers.timestamp,
            headers.nonce,
            headers.body_sha256,
            headers.recipient,
            headers.signature,
            body,
            address,
            self.clock.now_ms(),
        )
        if not code and self.rotations.retired(str(headers.sender), self.clock.now_ms()):
            code = "retired_key"
        if code:
            path = target.partition("?")[0]
            self.audit.refused(code, address, headers.sender, method, path, self.clock.monotonic())
        return code
