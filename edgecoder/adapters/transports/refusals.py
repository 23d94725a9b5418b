"""A peer's non-200 answer on the mesh, read back as a typed refusal.

A :class:`~edgecoder.errors.PeerTransportError` with ``reachable`` True, whose code comes
from the answer's ``{"error": {"code", "message"}}``; the status is used only when the
peer named no code, and to read a ``Retry-After`` delay.

A peer that refuses this node's request as signed outside its clock-skew window most
likely means this node's clock is wrong (every peer would then refuse it): that is
logged, at most once a minute, so the operator of a node nobody answers learns why.
"""

from __future__ import annotations

import json
import logging
import time

import httpx

from edgecoder.errors import PeerTransportError

__all__ = ("refusal", "retry_after_s")

log = logging.getLogger(__name__)

CLOCK_WARNING_EVERY_S = 60.0
_clock_warned_at: float | None = None


def refusal(response: httpx.Response, body: bytes) -> PeerTransportError:
    """The refusal in a non-200 ``response`` whose body is ``body``."""
    status = response.status_code
    # A peer that names no code: only its status says whether it was its own trouble.
    fallback = "unavailable" if status >= 500 else "http_error"
    try:
        error = (json.loads(body) or {}).get("error") or {}
        code, message = str(error.get("code", fallback)), str(error.get("message", ""))
    except (ValueError, AttributeError):
        code, message = fallback, body[:200].decode("utf-8", "replace")
    if code == "skew":
        _warn_clock(str(response.request.url.netloc, "ascii", "replace"))
    return PeerTransportError(
        code,
        message or f"HTTP {status}",
        reachable=True,
        retry_after_s=retry_after_s(response.headers.get("retry-after")),
    )


def _warn_clock(peer: str) -> None:
    global _clock_warned_at
    now = time.monotonic()
    if _clock_warned_at is not None and now - _clock_warned_at < CLOCK_WARNING_EVERY_S:
        return
    _clock_warned_at = now
    log.warning("the peer at %s refused this node's request as signed at the wrong time "
                "(skew): if peers keep refusing it, this machine's clock is off by more "
                "than mesh.skew_ms; check its time synchronisation (NTP)", peer)  # fmt: skip


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in its delay form; None if absent or a date."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None
