"""The membership directory of the running mesh: backed by verified, self-signed records.

A member may be believed *alive* at incarnation *i* only while this node holds that
member's own peer record with sequence ≥ *i* (and, for advert version *a* > 0, its advert
with sequence ≥ *a*), unexpired and for this network. Its address is the one its peer
record states, never what a relay says.
"""

from __future__ import annotations

from edgecoder.clock import Clock
from edgecoder.mesh.peer_info import ADVERT, PEER, PeerInfo, parse_peer
from edgecoder.wire.records import RecordError, RecordStore

__all__ = ("RecordDirectory",)


class RecordDirectory:
    """Vouches for members from the records in a :class:`RecordStore`."""

    def __init__(self, store: RecordStore, network: str, clock: Clock) -> None:
        self.store = store
        self.network = network
        self.clock = clock
        self._parsed: dict[str, tuple[int, PeerInfo]] = {}

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
