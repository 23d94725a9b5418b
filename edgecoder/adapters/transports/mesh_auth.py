"""Authentication on the mesh listener (pure ASGI): nothing unsigned reaches a route.

Every request except ``GET /healthz`` is read whole (up to ``mesh.max_body_bytes``) and
checked by :class:`~edgecoder.security.mesh_guard.MeshGuard` before routing; a refusal
answers its :func:`~edgecoder.adapters.transports.statuses.auth_status` (401; 429 for
``rate_limited``, 413 for ``too_large``) with
``{"error": {"code": ..., "message": ...}}``. An accepted request reaches the app with its
body replayed and the verified sender in ``scope["state"]["peer"]``.

A client that disconnects before its body is complete gets nothing: a partial body is not
a forgery, so it is neither checked nor audited (only counted in ``disconnects``).

Before anything else, a node too far behind sheds load (:mod:`edgecoder.mesh.load`): new
offers first, then gossip, answered ``503 overloaded`` with ``Retry-After``, before their
bodies are read or their signatures checked; work already under way (claims, grants,
closes, cancels, receipts) is always taken.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgecoder.adapters.transports.statuses import auth_status, refusal_status
from edgecoder.mesh.load import COMMITTED, GOSSIP, OFFERS
from edgecoder.security.mesh_guard import HEADERS, MeshGuard, PeerHeaders

__all__ = ("MeshAuthMiddleware",)

BODY_TIMEOUT_S = 10.0
"""How long a request's body may take to arrive: a third of the default skew window, as
long as a sender waits for its answer (a later body would be refused as ``skew`` anyway)."""
_MESSAGES = {
    "too_large": "request body too large",
    "body_timeout": f"the request body was not sent within {BODY_TIMEOUT_S:.0f} s",
    "missing_header": "a signed mesh request needs all of: " + ", ".join(HEADERS),
    "bad_header": "an envelope header is malformed",
    "wrong_recipient": "the request was signed for another node",
    "skew": "timestamp outside the accepted clock skew",
    "replay": "this request was already seen (or signed before this node restarted)",
    "blacklisted": "the sender is blacklisted",
    "rate_limited": "too many requests from this sender or address",
    "bad_key": "the public key does not belong to the sender's node id",
    "body_hash": "the body does not match its signed hash",
    "bad_signature": "the signature does not verify",
    "retired_key": "the sender's key was rotated away and its grace window has passed",
}
_WANTED = {name.encode(): index for index, name in enumerate(HEADERS)}
_CLASSES = {
    "/mesh/tasks/offer": OFFERS,
    **dict.fromkeys(
        ("/mesh/tasks/claim", "/mesh/tasks/run", "/mesh/tasks/close", "/mesh/tasks/cancel",
         "/mesh/tasks/receipt"),
        COMMITTED,
    ),
}  # fmt: skip
_OVERLOADED = "this node is too busy to take this request now; retry after the given delay"


class _DisconnectedError(Exception):
    """The client went away before its whole body arrived."""


class MeshAuthMiddleware:
    """Refuses every request whose envelope does not verify, before any route runs."""

    def __init__(self, app: ASGIApp, guard: MeshGuard) -> None:
        self.app = app
        self.guard = guard
        self.disconnects = 0
        self.body_timeouts = 0
        """Requests whose client went away mid-body (neither checked nor answered)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] == "GET" and scope["path"] == "/healthz"):
            await self.app(scope, receive, send)
            return
        load = self.guard.load
        wait_s = load.admit(_CLASSES.get(scope["path"], GOSSIP), self.guard.clock.monotonic())
        if wait_s:
            await _shed(send, wait_s)
            return
        try:
            await self._checked(scope, receive, send)
        finally:
            load.done()

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        values: list[str | None] = [None] * len(HEADERS)
        for name, value in scope["headers"]:
            index = _WANTED.get(name)
            if index is not None:
                values[index] = value.decode("latin-1")
        headers = PeerHeaders(*values)
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await _read_body(receive, self.guard.max_body)
        except _DisconnectedError:
            self.disconnects += 1
            return  # nobody to answer, and nothing to audit: a lost sender is no forger
        except TimeoutError:
            self.body_timeouts += 1
            await _refuse(send, "body_timeout")  # a slow sender, not a forger: no audit
            return
        query = scope.get("query_string", b"")
        target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        address = (scope.get("client") or ("unknown", 0))[0]
        code = (
            "too_large" if body is None
            else self.guard.check(scope["method"], target, headers, body, address)
        )  # fmt: skip
        if code:
            await _refuse(send, code)
            return
        scope.setdefault("state", {})["peer"] = headers.sender
        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay_body, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it exceeds ``limit`` bytes.

    :raises _DisconnectedError: the client disconnected before the last chunk.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the body will never be whole
            raise _DisconnectedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _refuse(send: Send, code: str) -> None:
    await _answer(send, auth_status(code), code, _MESSAGES[code])


async def _shed(send: Send, wait_s: int) -> None:
    retry = [(b"retry-after", str(wait_s).encode())]
    await _answer(send, refusal_status("overloaded"), "overloaded", _OVERLOADED, retry)


async def _answer(
    send: Send, status: int, code: str, message: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), *extra]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
