"""The security audit trail: every refused mesh request counted, and logged without flooding.

Each refusal increments a counter per reason code (reported by ``/healthz``) and is
written to the ``edgecoder.audit`` logger. A flood must not become a log flood: for each
(reason, source address) at most one line per :data:`QUIET_S` seconds is written, and the
next line says how many were held back.
"""

from __future__ import annotations

import logging
from collections import Counter

__all__ = ("QUIET_S", "SecurityAudit")

QUIET_S = 10.0
log = logging.getLogger("edgecoder.audit")


class SecurityAudit:
    """Counts and logs refusals; ``now`` is a monotonic clock reading in seconds."""

    def __init__(self, max_sources: int = 4096) -> None:
        self.rejections: Counter[str] = Counter()
        self._last: dict[tuple[str, str], float] = {}
        self._held: Counter[tuple[str, str]] = Counter()
        self._max_sources = max_sources

    def refused(
        self, code: str, address: str, sender: str | None, method: str, path: str, now: float
    ) -> None:
        """Record one refusal."""
        self.rejections[code] += 1
        key = (code, address)
        last = self._last.get(key)
        if last is not None and now - last < QUIET_S:
            self._held[key] += 1
            return
        if len(self._last) >= self._max_sources:
            self._last.clear()
        self._last[key] = now
        held = self._held.pop(key, 0)
        log.warning(
            "refused %s %s from %s (claimed sender %s): %s%s",
            method,
            path,
            address,
            sender or "-",
            code,
            f" (+{held} more since the last line)" if held else "",
        )

    def counts(self) -> dict[str, int]:
        """Refusals so far, by reason code."""
        return dict(self.rejections)
