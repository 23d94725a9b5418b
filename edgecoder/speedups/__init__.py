"""Selects the compiled core (``_speedups/``) or its pure-Python twin, once, at import.

The compiled modules are used unless ``EDGECODER_NO_EXTENSIONS`` is set or they fail
to import; either way :data:`USING_EXTENSIONS` says which core runs, and
:data:`FALLBACK_REASON` says why the pure one was chosen.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = ("FALLBACK_REASON", "USING_EXTENSIONS", "canonical", "chain", "signing")

if TYPE_CHECKING:
    from edgecoder.speedups._pure import canonical, chain, signing

    USING_EXTENSIONS: bool
    FALLBACK_REASON: str


def _select() -> tuple[tuple[ModuleType, ...], bool, str]:
    if os.environ.get("EDGECODER_NO_EXTENSIONS", "").strip() not in {"", "0"}:
        reason = "EDGECODER_NO_EXTENSIONS is set"
    else:
        try:
            from edgecoder.speedups._compiled import canonical, chain, signing
        except ImportError as exc:
            reason = f"compiled core not importable ({exc})"
        else:
            return (canonical, chain, signing), True, ""
    from edgecoder.speedups._pure import canonical, chain, signing

    return (canonical, chain, signing), False, reason


if not TYPE_CHECKING:
    (canonical, chain, signing), USING_EXTENSIONS, FALLBACK_REASON = _select()
