"""What the task protocol and the ledger need from the network: messages, by kind, to
node ids.

A transport carries each :class:`MessageKind` its own way (the HTTP mesh adapter as a
signed request to a route of the peer's mesh listener; an in-memory one as a call) and
reports failures as :class:`~edgecoder.errors.PeerTransportError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from enum import StrEnum
from typing import Any, Protocol

__all__ = ("UNAVAILABLE", "MessageKind", "TaskTransport")


class MessageKind(StrEnum):
    """The task protocol's messages (bodies in :mod:`edgecoder.tasks.messages`)."""

    OFFER = "offer"
    """origin → candidate; answered ``{"result": "considering" | reason}``."""
    CLAIM = "claim"
    """candidate → origin; answered ``{"result": "granted" | "pending" | "closed"}``."""
    CLOSE = "close"
    """origin → candidate: the attempt went to another node."""
    RUN = "run"
    """origin → grantee: the grant, answered with a stream of sealed event lines."""
    CANCEL = "cancel"
    """origin → worker: stop working on the attempt."""
    RECEIPT = "receipt"
    """origin → worker: the signed receipt, answered ``{"worker_sig": hex}``."""
    ENTRIES = "entries"
    """any node → any node: a ledger chain's entries after a place, answered
    ``{"entries": [...], "vouches": [...]}`` (:mod:`edgecoder.ledger.economy`)."""
    RECORDS = "records"
    """any node → any node: signed records to apply (blacklist entries spreading),
    answered ``{"results": [...]}``."""


UNAVAILABLE = frozenset(
    {"bad_answer", "internal_error", "overloaded", "storage_unavailable", "unavailable"}
)
"""Codes with which a peer that answered says it cannot serve now (its own state, not the
request's fault), so another node may well succeed."""


class TaskTransport(Protocol):
    """Messages to a peer, addressed by node id, signed by this node."""

    async def post(self, node_id: str, kind: MessageKind, body: dict[str, Any]) -> dict[str, Any]:
        """Send one message; the peer's decoded answer.

        :raises PeerTransportError: unreachable, or the peer refused.
        """
        ...

    def stream(
        self, node_id: str, kind: MessageKind, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Send one message, then the answer's lines as they arrive (context manager).

        :raises PeerTransportError: on entry, unreachable or the peer refused.
        """
        ...
