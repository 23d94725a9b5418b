"""The membership directory of the running mesh: backed by verified, self-signed records.

A member may be believed *alive* at incarnation *i* only while this node holds that
member's own peer record with sequence ≥ *i* (and, for advert version *a* > 0, its advert
with sequence ≥ *a*), unexpired and for this network. Its address is the one its peer
record states, never what a relay says.
"""

from __future__ import annotations

from edgecoder.clock import Clock
from edgecoder.errors import RecordError
from edgecoder.mesh.advert_types import Advert
from edgecoder.mesh.peer_info import ADVERT, PEER, PeerInfo, parse_advert, parse_peer
from edgecoder.wire.records import RecordStore, SignedRecord

__all__ = ("RecordDirectory",)


class RecordDirectory:
    """Vouches for members from the records in a :class:`RecordStore`."""

    def __init__(self, store: RecordStore, network: str, clock: Clock) -> None:
        self.store = store
        self.network = network
        self.clock = clock
        self._parsed: dict[str, tuple[int, PeerInfo]] = {}
        self._adverts: dict[str, tuple[SignedRecord, Advert | None]] = {}

    def info(self, node_id: str) -> PeerInfo | None:
        """The body of the node's current, unexpired peer record for this network."""
        record = self.store.get(node_id, PEER)
        if record is None or record.expires_ms <= self.clock.now_ms():
            return None
        cached = self._parsed.get(node_id)
        if cached is None or cached[0] != record.seq:
            try:
                cached = (record.seq, parse_peer(record))
            except RecordError:
                return None
            self._parsed[node_id] = cached
        info = cached[1]
        return info if info.network == self.network else None

    def vouch(self, node_id: str, incarnation: int, advert: int) -> bool:
        """Whether the node's own records back this entry."""
        record = self.store.get(node_id, PEER)
        if record is None or record.seq < incarnation or self.info(node_id) is None:
            return False
        if advert == 0:
            return True
        held = self.store.get(node_id, ADVERT)
        return held is not None and held.seq >= advert

    def address(self, node_id: str) -> str | None:
        """The mesh URL the node's own peer record states."""
        info = self.info(node_id)
        return info.url if info else None

    def check_advert(self, record: SignedRecord) -> Advert:
        """Parse an advert record on its way into the store (and keep what it says).

        :raises RecordError: ``bad_body``.
        """
        advert = parse_advert(record)
        self._adverts[record.author] = (record, advert)
        return advert

    def advert(self, node_id: str) -> Advert | None:
        """What the node's held advert says (None without one, or with a malformed one)."""
        record = self.store.get(node_id, ADVERT)
        if record is None:
            self._adverts.pop(node_id, None)
            return None
        cached = self._adverts.get(node_id)
        if cached is None or cached[0] is not record:
            # A record that came in another way (this node's own, or one posted to
            # /mesh/records, which checks signatures but not bodies).
            try:
                cached = (record, parse_advert(record))
            except RecordError:
                cached = (record, None)
            self._adverts[node_id] = cached
        return cached[1]
