"""Which HTTP status each refusal code gets on the mesh listener: the one place it is decided.

The core refuses with typed errors carrying a ``code`` (:class:`~edgecoder.errors.ProtocolError`
and its kinds); the mesh routes answer ``{"error": {"code", "message"}}`` with
:func:`refusal_status` of that code, and the authentication layer with :func:`auth_status`
of the verifier's reason. The client side reads only the code back, never the status
(:mod:`edgecoder.adapters.transports.task_transport`), so another transport needs none of this.
"""

from __future__ import annotations

from typing import Final

__all__ = ("AUTH_STATUS", "REFUSAL_STATUS", "auth_status", "refusal_status")

REFUSAL_STATUS: Final = {
    "wrong_network": 403,
    "no_such_run": 404,
    "already_running": 409,
    "duplicate_node_id": 409,
    "expired": 409,
    "not_claimed": 409,
    "receipt_mismatch": 409,
    "internal_error": 500,
    "overloaded": 503,
    "storage_unavailable": 503,
}
"""Status of a refusal by a route (or of this node's state); every other code is 400."""

AUTH_STATUS: Final = {"too_large": 413, "rate_limited": 429, "body_timeout": 408}
"""Status of a request whose envelope is refused; every other reason is 401."""


def refusal_status(code: str) -> int:
    """The status a route's refusal with ``code`` answers (400 unless listed)."""
    return REFUSAL_STATUS.get(code, 400)


def auth_status(code: str) -> int:
    """The status an envelope refused for ``code`` answers (401 unless listed)."""
    return AUTH_STATUS.get(code, 401)
