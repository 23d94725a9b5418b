"""What this node knows about one peer, as the operator sees it (``/admin/peers``, D-Bus)."""

from __future__ import annotations

from dataclasses import dataclass

from edgecoder.mesh.advert_types import Advert

__all__ = ("PeerView",)


@dataclass(frozen=True, slots=True)
class PeerView:
    """One known peer: identity, addresses, state, when last heard, and its advert."""

    node_id: str
    url: str | None
    """The mesh URL membership knows it by."""
    addrs: tuple[str, ...]
    """Every address its peer record states (none without a current record)."""
    api_port: int | None
    version: str | None
    state: str
    """``alive``, ``suspect`` or ``dead``."""
    incarnation: int
    state_since_ms: int | None
    """Wall-clock time it became suspect or dead (None while alive)."""
    last_heard_ms: int | None
    """Wall-clock time of the last message received from it."""
    advert: Advert | None

    def as_json(self) -> dict[str, object]:
        """The peer as JSON data: ``models``, ``load`` and the whole ``advert`` from its
        advert as the record carries it (keys in canonical order), empty without one."""
        advert = _canonical_order(self.advert.as_body()) if self.advert is not None else {}
        return {
            "node_id": self.node_id,
            "url": self.url,
            "addrs": list(self.addrs),
            "api_port": self.api_port,
            "version": self.version,
            "state": self.state,
            "incarnation": self.incarnation,
            "state_since_ms": self.state_since_ms,
            "last_heard_ms": self.last_heard_ms,
            "models": advert.get("models", []),
            "load": {k: advert.get(k) for k in ("load_pct", "slots", "queue_depth", "owner_busy")},
            "advert": advert,
        }


def _canonical_order(body: dict[str, object]) -> dict[str, object]:
    return {key: _sorted_value(body[key]) for key in sorted(body)}


def _sorted_value(value: object) -> object:
    if isinstance(value, dict):
        return _canonical_order(value)
    if isinstance(value, list):
        return [_sorted_value(item) for item in value]
    return value
