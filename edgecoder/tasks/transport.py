"""What the task protocol needs from the network; the HTTP mesh adapter provides it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

__all__ = ("UNAVAILABLE", "TaskTransport")

UNAVAILABLE = frozenset(
    {"bad_answer", "internal_error", "mesh_off", "overloaded", "tasks_off", "unavailable"}
)
"""Codes with which a peer that answered says it cannot serve now (its own state, not the
request's fault), so another node may well succeed."""


class TaskTransport(Protocol):
    """Signed requests to a peer, addressed by node id."""

    async def post(self, node_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send a body (canonical JSON on the wire); the decoded answer.

        :raises PeerTransportError: unreachable, or the peer refused.
        """
        ...

    def stream(
        self, node_id: str, path: str, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Send a body, then the answer's lines as they arrive (context manager).

        :raises PeerTransportError: on entry, unreachable or the peer refused.
        """
        ...
