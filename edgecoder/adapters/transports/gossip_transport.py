"""Gossip over HTTP: each membership message is one signed ``POST /mesh/gossip``."""

from __future__ import annotations

import httpx

from edgecoder.adapters.transports.mesh_client import MeshClient
from edgecoder.adapters.transports.refusals import refusal
from edgecoder.errors import EdgeCoderError, PeerTransportError

__all__ = ("HttpGossipTransport",)


class HttpGossipTransport:
    """Sends gossip bodies through a :class:`MeshClient` (signed, pooled, short timeouts)."""

    def __init__(self, client: MeshClient) -> None:
        self.client = client

    async def send(self, address: str, node_id: str | None, body: bytes) -> object:
        """POST ``body`` to the node at the URL ``address``; its decoded answer.

        :raises PeerTransportError: unreachable (``reachable`` False), or a non-200 answer
            with the code it names.
        """
        try:
            request = await self.client.prepare(address, "POST", "/mesh/gossip", body, node_id)
            response = await self.client.send(request)
        except (httpx.HTTPError, EdgeCoderError) as exc:
            raise PeerTransportError("unreachable", str(exc), reachable=False) from None
        if response.status_code == 401 and node_id is None:
            self.client.forget(address)  # a seed address now held by another node: ask again
        if response.status_code != 200:
            raise refusal(response, response.content)
        try:
            return response.json()
        except ValueError:
            return response.text[:200]
