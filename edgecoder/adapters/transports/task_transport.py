"""The task protocol over HTTP: each message kind is a signed ``POST /mesh/tasks/<kind>``.

A peer is addressed by node id; its URL comes from its own signed peer record. Every
body is canonical JSON; a refusal's ``{"error": {"code", "message"}}`` becomes a
:class:`~edgecoder.errors.PeerTransportError` with that code (``reachable``, and
``retry_after_s`` from a ``Retry-After`` header); a peer that cannot be reached, or an
exchange that breaks, one with ``reachable`` False. The status is read only there
(:mod:`~edgecoder.adapters.transports.refusals`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from edgecoder.adapters.transports.mesh_client import MeshClient
from edgecoder.adapters.transports.refusals import refusal
from edgecoder.errors import EdgeCoderError, PeerTransportError
from edgecoder.tasks.transport import MessageKind
from edgecoder.wire import canonical

__all__ = ("PATHS", "HttpTaskTransport")

_ELSEWHERE = {MessageKind.ENTRIES: "/mesh/ledger/entries", MessageKind.RECORDS: "/mesh/records"}
PATHS = {kind: _ELSEWHERE.get(kind, f"/mesh/tasks/{kind.value}") for kind in MessageKind}
"""The mesh listener's route for each message kind (served by ``task_routes``, and
``mesh_app`` for records)."""


class HttpTaskTransport:
    """Signs with this node's key; finds peers' URLs with ``resolve``."""

    def __init__(self, client: MeshClient, resolve: Callable[[str], str | None]) -> None:
        self.client = client
        self.resolve = resolve

    async def _prepare(self, node_id: str, kind: MessageKind, body: dict[str, Any]) -> Any:
        url = self.resolve(node_id)
        if url is None:
            raise PeerTransportError(
                "unknown_peer", f"no address known for {node_id}", reachable=False
            )
        try:
            encoded = canonical.encode(body)
            return await self.client.prepare(url, "POST", PATHS[kind], encoded, node_id)
        except EdgeCoderError as exc:
            raise PeerTransportError("bad_request", str(exc), reachable=False) from None

    async def post(self, node_id: str, kind: MessageKind, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``kind``'s route; the decoded answer (see :class:`TaskTransport`)."""
        request = await self._prepare(node_id, kind, body)
        try:
            response = await self.client.send(request)
        except httpx.HTTPError as exc:
            raise PeerTransportError(
                "unreachable", f"{node_id}: {exc!r}", reachable=False
            ) from None
        if response.status_code != 200:
            raise refusal(response, response.content)
        try:
            answer = response.json()
        except ValueError:
            raise PeerTransportError(
                "bad_answer", "the peer's answer is not JSON", reachable=True
            ) from None
        return answer if isinstance(answer, dict) else {}

    @contextlib.asynccontextmanager
    async def stream(
        self, node_id: str, kind: MessageKind, body: dict[str, Any]
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """POST ``body`` to ``kind``'s route; the answer's lines as they arrive."""
        request = await self._prepare(node_id, kind, body)
        try:
            async with self.client.stream(request) as response:
                if response.status_code != 200:
                    raise refusal(response, await response.aread())
                yield _lines(response)
        except httpx.HTTPError as exc:
            raise PeerTransportError(
                "unreachable", f"{node_id}: {exc!r}", reachable=False
            ) from None


async def _lines(response: httpx.Response) -> AsyncIterator[bytes]:
    async for line in response.aiter_lines():
        if line:
            yield line.encode()
