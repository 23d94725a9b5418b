"""Signed outgoing mesh requests: async, pooled connections, bounded timeouts.

Every request is signed for one recipient. A base URL's node id is learnt from its
unauthenticated ``/healthz`` the first time, then cached; the signature binds it, so a
wrong guess fails at the recipient with ``wrong_recipient``, never reaches another node's
route.

Besides httpx's per-phase timeouts, each request has a bound on its whole exchange (for a
stream: until the answer's headers), kept well inside the receivers' clock-skew window: a
request that waited that long is abandoned here, where its connection closes, instead of
reaching a busy peer after the window and being refused as a bad timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from edgecoder.clock import Clock
from edgecoder.errors import EdgeCoderError
from edgecoder.security.identity import NodeIdentity, is_node_id
from edgecoder.speedups import envelope

__all__ = ("MeshClient", "SignedRequest")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One request, signed and ready to send (or to print, with ``--dry-run``)."""

    url: str
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def as_dict(self) -> dict[str, object]:
        """The request as JSON-ready data; ``body`` is the exact text to be sent."""
        return {
            "url": self.url,
            "method": self.method,
            "path": self.target,
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8"),
        }


class MeshClient:
    """Signs with this node's key and sends to peers over one pooled HTTP client."""

    def __init__(
        self,
        identity: NodeIdentity,
        clock: Clock,
        timeout_s: float = 10.0,
        *,
        read_timeout_s: float | None = None,
        max_connections: int = 100,
        total_s: float = 10.0,
    ) -> None:
        """``read_timeout_s`` None means the same as ``timeout_s``; ``total_s`` bounds a
        whole exchange (a stream's until its headers)."""
        self.identity = identity
        self.clock = clock
        self.total_s = total_s
        timeout = httpx.Timeout(timeout_s, read=read_timeout_s if read_timeout_s else timeout_s)
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections // 2)  # fmt: skip
        self._http = httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)
        self._node_ids: dict[str, str] = {}

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def node_id(self, base_url: str) -> str:
        """The node id behind ``base_url``, from its ``/healthz`` (cached).

        :raises EdgeCoderError: it does not answer like an EdgeCoder node.
        """
        base = base_url.rstrip("/")
        known = self._node_ids.get(base)
        if known is not None:
            return known
        try:
            response = await self._http.get(f"{base}/healthz")
            node_id = response.json().get("node_id", "")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise EdgeCoderError(f"{base} did not answer like an EdgeCoder node: {exc}") from None
        if not isinstance(node_id, str) or not is_node_id(node_id):
            raise EdgeCoderError(f"{base}/healthz reported no valid node id")
        self._node_ids[base] = node_id
        return node_id

    def forget(self, base_url: str) -> None:
        """Forget the cached node id behind ``base_url`` (another node answers there now)."""
        self._node_ids.pop(base_url.rstrip("/"), None)

    async def prepare(
        self,
        base_url: str,
        method: str,
        target: str,
        body: bytes = b"",
        recipient: str | None = None,
    ) -> SignedRequest:
        """Sign a request for the node at ``base_url`` (``target`` is path plus query).

        ``recipient`` is the node id expected there; when None it is asked for.
        """
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or not target.startswith("/"):
            raise EdgeCoderError(f"path must start with '/', got {target!r}")
        if recipient is None:
            recipient = await self.node_id(base_url)
        headers = envelope.sign_request(
            self.identity.secret_key,
            self.identity.public_key,
            method.upper(),
            target,
            recipient,
            body,
            self.clock.now_ms(),
        )
        return SignedRequest(base_url.rstrip("/") + target, method.upper(), target, headers, body)

    async def send(self, request: SignedRequest) -> httpx.Response:
        """Send a prepared request.

        :raises httpx.HTTPError: the peer could not be reached.
        """
        headers = {**request.headers, "content-type": "application/json"}
        try:
            async with asyncio.timeout(self.total_s):
                return await self._http.request(
                    request.method, request.url, headers=headers, content=request.body
                )
        except TimeoutError:
            raise httpx.TimeoutException(f"no answer within {self.total_s:g} s") from None

    @contextlib.asynccontextmanager
    async def stream(self, request: SignedRequest) -> AsyncIterator[httpx.Response]:
        """Send a prepared request; the response, whose body is read as it arrives.

        :raises httpx.HTTPError: the peer could not be reached.
        """
        headers = {**request.headers, "content-type": "application/json"}
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(self.total_s):
                    response = await stack.enter_async_context(
                        self._http.stream(
                            request.method, request.url, headers=headers, content=request.body
                        )
                    )
            except TimeoutError:
                raise httpx.TimeoutException(f"no answer within {self.total_s:g} s") from None
            yield response
