"""This node's own capability advert: what it can run and how busy it is.

Fields (all integers, strings and booleans — the canonical encoding has no floats):
``models`` (name, digest, size_class, context_length, size_bytes, loaded), ``backend``,
``device_class``, ``ram_mb``, ``prefill_tps`` and ``decode_tps`` (measured by a short
calibration at start; 0 until measured or without a model), ``slots`` (peer tasks it runs
at once: ``tasks.worker_slots``; 0 for a requester-only node), ``queue_depth``
(generations waiting for a slot of the local backend), ``load_pct`` (1-minute load
average over the CPU count, in steps of 10 so small wobbles do not re-sign the advert),
``owner_busy`` and ``price_pct`` (the price multiplier in percent). The typed value, and
the shape check of a peer's, are :class:`~edgecoder.mesh.advert_types.Advert`.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

from edgecoder.inference.calibration import Calibration
from edgecoder.inference.types import ModelInfo
from edgecoder.mesh.advert_types import Advert, AdvertModel

__all__ = ("device_class", "load_pct", "local_advert", "ram_mb", "size_class")

_GIB = 1024**3
_SIZE_CLASSES = ((1 * _GIB, "xs"), (4 * _GIB, "s"), (10 * _GIB, "m"), (30 * _GIB, "l"))


def size_class(size_bytes: int) -> str:
    """``xs`` (< 1 GiB), ``s`` (< 4), ``m`` (< 10), ``l`` (< 30) or ``xl``; ``?`` if unknown."""
    if size_bytes <= 0:
        return "?"
    for limit, name in _SIZE_CLASSES:
        if size_bytes < limit:
            return name
    return "xl"


@functools.cache
def device_class() -> str:
    """``raspberry-pi`` on a Pi, else the machine architecture (``x86_64``, ``aarch64``)."""
    try:
        model = Path("/proc/device-tree/model").read_bytes()
    except OSError:
        model = b""
    if b"Raspberry Pi" in model:
        return "raspberry-pi"
    return platform.machine() or "unknown"


@functools.cache
def ram_mb() -> int:
    """Physical memory in MiB."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return 0


def load_pct() -> int:
    """The 1-minute load average over the CPU count, in percent, rounded to tens."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 0
    return round(load / (os.cpu_count() or 1) * 10) * 10


def local_advert(
    *,
    models: list[ModelInfo],
    backend: str,
    calibration: Calibration | None,
    slots: int,
    queue_depth: int,
    owner_busy: bool,
    price_pct: int,
) -> Advert:
    """This node's advert from what it knows about itself now."""
    return Advert(
        models=tuple(
            AdvertModel(
                name=m.name,
                digest=m.digest,
                size_class=size_class(m.size_bytes),
                context_length=m.context_length,
                size_bytes=m.size_bytes,
                loaded=m.loaded,
            )
            for m in models
        ),
        backend=backend,
        device_class=device_class(),
        ram_mb=ram_mb(),
        prefill_tps=calibration.prefill_tps if calibration else 0,
        decode_tps=calibration.decode_tps if calibration else 0,
        slots=slots,
        queue_depth=max(0, queue_depth),
        load_pct=load_pct(),
        owner_busy=owner_busy,
        price_pct=price_pct,
    )
