"""Gossip over HTTP: each membership message is one signed ``POST /mesh/gossip``."""

from __future__ import annotations

from typing import Any

import httpx

from edgecoder.adapters.transports.mesh_client import MeshClient
from edgecoder.errors import EdgeCoderError

__all__ = ("HttpGossipTransport",)


class HttpGossipTransport:
    """Sends gossip bodies through a :class:`MeshClient` (signed, pooled, short timeouts)."""

    def __init__(self, client: MeshClient) -> None:
        self.client = client

    async def send(self, url: str, node_id: str | None, body: bytes) -> tuple[int, Any]:
        """POST ``body`` to ``url``; (0, reason) when the peer cannot be reached."""
        try:
            request = await self.client.prepare(url, "POST", "/mesh/gossip", body, node_id)
            response = await self.client.send(request)
        except (httpx.HTTPError, EdgeCoderError) as exc:
            return 0, str(exc)
        try:
            answer = response.json()
        except ValueError:
            return response.status_code, response.text[:200]
        if response.status_code == 401 and node_id is None:
            self.client.forget(url)  # a seed address now held by another node: ask again
        return response.status_code, answer
