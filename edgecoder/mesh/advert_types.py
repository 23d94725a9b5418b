"""A capability advert as typed values: parsed and checked once, when its record is accepted.

:meth:`Advert.parse` is the one shape check of an advert body (``bad_body`` on anything
else); :meth:`Advert.as_body` gives back exactly the body it was parsed from (or, for this
node's own advert, the body it signs). Fields an older node does not know — a newer
peer's additions — are kept in ``extra``, so they survive a round trip and still show in
the operator's views, but nothing here reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from edgecoder.errors import RecordError

__all__ = ("MAX_MODELS", "Advert", "AdvertModel")

MAX_MODELS = 64
_NOTHING: Mapping[str, object] = MappingProxyType({})
_INTS = ("ram_mb", "prefill_tps", "decode_tps", "slots", "queue_depth", "load_pct", "price_pct")
_STRS = ("backend", "device_class")
_FIELDS = frozenset({"models", "owner_busy", *_INTS, *_STRS})
_MODEL_INTS = ("context_length", "size_bytes")
_MODEL_STRS = ("name", "digest", "size_class")
_MODEL_FIELDS = frozenset({"loaded", *_MODEL_INTS, *_MODEL_STRS})


def _fail(message: str) -> RecordError:
    return RecordError("bad_body", message)


def _extra(body: Mapping[str, object], known: frozenset[str]) -> Mapping[str, object]:
    if known.issuperset(body):
        return _NOTHING
    return MappingProxyType({k: v for k, v in body.items() if k not in known})


@dataclass(frozen=True, slots=True)
class AdvertModel:
    """One model an advert lists."""

    name: str
    digest: str
    size_class: str
    """``xs``, ``s``, ``m``, ``l``, ``xl`` or ``?`` (:func:`edgecoder.mesh.advert.size_class`)."""
    context_length: int
    """Tokens; 0 or less when unknown (then any prompt fits)."""
    size_bytes: int
    loaded: bool
    extra: Mapping[str, object] = field(default_factory=lambda: _NOTHING, hash=False, repr=False)
    """Fields this node does not know, as the advert carried them."""

    @classmethod
    def parse(cls, entry: object) -> AdvertModel:
        """One entry of an advert's ``models``, checked.

        :raises RecordError: ``bad_body``.
        """
        if not isinstance(entry, dict):
            raise _fail("each advert model must be an object")
        if any(type(entry.get(k)) is not int for k in _MODEL_INTS):
            raise _fail("model context_length and size_bytes must be integers")
        if any(not isinstance(entry.get(k), str) for k in _MODEL_STRS):
            raise _fail("model name, digest and size_class must be strings")
        if type(entry.get("loaded")) is not bool:
            raise _fail("model loaded must be true or false")
        return cls(entry["name"], entry["digest"], entry["size_class"], entry["context_length"],
                   entry["size_bytes"], entry["loaded"], _extra(entry, _MODEL_FIELDS))  # fmt: skip

    def as_body(self) -> dict[str, object]:
        """The entry as the advert body lists it."""
        return {"name": self.name, "digest": self.digest, "size_class": self.size_class,
                "context_length": self.context_length, "size_bytes": self.size_bytes,
                "loaded": self.loaded, **self.extra}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Advert:
    """What a node says it can run and how busy it is (see ``docs/mesh.md``)."""

    models: tuple[AdvertModel, ...]
    backend: str
    device_class: str
    ram_mb: int
    prefill_tps: int
    """Measured prompt tokens per second; 0 until measured."""
    decode_tps: int
    slots: int
    """Peer tasks it runs at once; 0 for a requester-only node."""
    queue_depth: int
    """Generations waiting for a slot of its local backend."""
    load_pct: int
    owner_busy: bool
    price_pct: int
    """Its price multiplier, in percent."""
    extra: Mapping[str, object] = field(default_factory=lambda: _NOTHING, hash=False, repr=False)
    """Fields this node does not know, as the advert carried them."""

    @classmethod
    def parse(cls, body: object) -> Advert:
        """An advert's body, checked for shape.

        :raises RecordError: ``bad_body``.
        """
        if not isinstance(body, dict):
            raise _fail("an advert body must be an object")
        for name in _INTS:
            value = body.get(name)
            if type(value) is not int or value < 0:
                raise _fail(f"advert field {name} must be a non-negative integer")
        for name in _STRS:
            if not isinstance(body.get(name), str):
                raise _fail(f"advert field {name} must be a string")
        if type(body.get("owner_busy")) is not bool:
            raise _fail("advert field owner_busy must be true or false")
        models = body.get("models")
        if not isinstance(models, list) or len(models) > MAX_MODELS:
            raise _fail(f"advert models must be a list of at most {MAX_MODELS}")
        return cls(
            models=tuple(AdvertModel.parse(entry) for entry in models),
            backend=body["backend"],
            device_class=body["device_class"],
            ram_mb=body["ram_mb"],
            prefill_tps=body["prefill_tps"],
            decode_tps=body["decode_tps"],
            slots=body["slots"],
            queue_depth=body["queue_depth"],
            load_pct=body["load_pct"],
            owner_busy=body["owner_busy"],
            price_pct=body["price_pct"],
            extra=_extra(body, _FIELDS),
        )

    def as_body(self) -> dict[str, object]:
        """The body to sign, or as a record carried it."""
        return {
            "models": [m.as_body() for m in self.models],
            "backend": self.backend,
            "device_class": self.device_class,
            "ram_mb": self.ram_mb,
            "prefill_tps": self.prefill_tps,
            "decode_tps": self.decode_tps,
            "slots": self.slots,
            "queue_depth": self.queue_depth,
            "load_pct": self.load_pct,
            "owner_busy": self.owner_busy,
            "price_pct": self.price_pct,
            **self.extra,
        }

    def model(self, name: str) -> AdvertModel | None:
        """The first entry for model ``name``, if the advert lists it."""
        for entry in self.models:
            if entry.name == name:
                return entry
        return None
