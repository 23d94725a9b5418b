"""What the task protocol needs from the network; the HTTP mesh adapter provides it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from edgecoder.errors import EdgeCoderError

__all__ = ("TaskTransport", "TaskTransportError")


class TaskTransportError(EdgeCoderError):
    """A task exchange failed: unreachable (``status`` 0) or refused (HTTP status, code)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class TaskTransport(Protocol):
    """Signed requests to a peer, addressed by node id."""

    async def post(self, node_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a canonical JSON body; the decoded JSON answer.

        :raises TaskTransportError: unreachable, or a non-200 answer.
        """
        ...

    def stream(
        self, node_id: str, path: str, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """POST, then the answer's lines as they arrive (context manager).

        :raises TaskTransportError: on entry, unreachable or a non-200 answer.
        """
        ...
