"""Capability adverts for tests: a typed advert with only the fields a test cares about."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edgecoder.mesh.advert_types import Advert, AdvertModel

__all__ = ("advert", "model")


def model(name: str = "m", **fields: Any) -> AdvertModel:
    """A loaded model entry (4096-token context, 1 byte) with ``fields`` changed."""
    base = AdvertModel(name=name, digest="", size_class="xs", context_length=4096,
                       size_bytes=1, loaded=True)  # fmt: skip
    return replace(base, **fields)


def advert(*models: AdvertModel, **fields: Any) -> Advert:
    """An idle one-slot advert listing ``models``, with ``fields`` changed."""
    base = Advert(models=models, backend="scripted", device_class="x86_64", ram_mb=1024,
                  prefill_tps=0, decode_tps=0, slots=1, queue_depth=0, load_pct=0,
                  owner_busy=False, price_pct=100)  # fmt: skip
    return replace(base, **fields)
