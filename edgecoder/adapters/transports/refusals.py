"""A peer's non-200 answer on the mesh, read back as a typed refusal.

A :class:`~edgecoder.errors.PeerTransportError` with ``reachable`` True, whose code comes
from the answer's ``{"error": {"code", "message"}}``; the status is used only when the
peer named no code, and to read a ``Retry-After`` delay.
"""

from __future__ import annotations

import json

import httpx

from edgecoder.errors import PeerTransportError

__all__ = ("refusal", "retry_after_s")


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
    return PeerTransportError(
        code,
        message or f"HTTP {status}",
        reachable=True,
        retry_after_s=retry_after_s(response.headers.get("retry-after")),
    )


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in its delay form; None if absent or a date."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None
