"""Selects the compiled core (``_speedups/``) or its pure-Python twin, once, at import.

The compiled modules are used unless ``EDGECODER_NO_EXTENSIONS`` is set or one fails to
import (the core switches as one unit); :data:`USING_EXTENSIONS` says which core runs and
:data:`FALLBACK_REASON` why the pure one was chosen. The pure modules are the type
contract: type checkers read them, whichever runs.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = (
    "FALLBACK_REASON",
    "USING_EXTENSIONS",
    "canonical",
    "chain",
    "envelope",
    "replay",
    "signing",
)

_NAMES = ("canonical", "chain", "envelope", "replay", "signing")


def _load(kind: str) -> tuple[ModuleType, ...]:
    return tuple(importlib.import_module(f"edgecoder.speedups._{kind}.{n}") for n in _NAMES)


def _select() -> tuple[tuple[ModuleType, ...], bool, str]:
    if os.environ.get("EDGECODER_NO_EXTENSIONS", "").strip() not in {"", "0"}:
        return _load("pure"), False, "EDGECODER_NO_EXTENSIONS is set"
    try:
        return _load("compiled"), True, ""
    except ImportError as exc:
        return _load("pure"), False, f"compiled core not importable ({exc})"


if TYPE_CHECKING:
    from edgecoder.speedups._pure import canonical, chain, envelope, replay, signing

    USING_EXTENSIONS: bool
    FALLBACK_REASON: str
else:
    (canonical, chain, envelope, replay, signing), USING_EXTENSIONS, FALLBACK_REASON = _select()
