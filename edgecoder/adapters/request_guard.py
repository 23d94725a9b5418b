"""The outermost layer of both HTTP apps: a request id for every request, and a last resort.

Every request gets an id — the caller's ``X-Request-Id`` when it is a short token, else a
fresh one — kept in ``scope["state"]["request_id"]`` and echoed in the response's
``X-Request-Id`` header, so a client's bug report and the node's log line meet.

Expected refusals are answered by the routes themselves. If anything else escapes a
route, this layer logs one line naming the request id and answers ``500`` as JSON in the
request's dialect (the body comes from ``error_body``) — never Starlette's plain-text
page, never a dropped connection; the traceback follows at debug level. A client that
goes away mid-request is a disconnect, not an error: nothing is logged above debug and
nothing is sent.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("ErrorBody", "RequestGuardMiddleware", "request_id")

log = logging.getLogger(__name__)

ErrorBody = Callable[[Scope, str], object]
"""``(scope, message) -> JSON body`` of an internal error in the request's dialect."""
ShownPath = Callable[[str], str]
"""The request path as it may appear in a log line (secrets in it masked)."""

_CALLER_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def request_id(scope: Scope) -> str:
    """The id :class:`RequestGuardMiddleware` gave this request (``-`` outside it)."""
    state = scope.get("state") or {}
    return str(state.get("request_id", "-"))


class RequestGuardMiddleware:
    """Request ids, and a JSON 500 in the dialect for whatever a route failed to handle."""

    def __init__(
        self,
        app: ASGIApp,
        listener: str,
        error_body: ErrorBody,
        shown_path: ShownPath = str,
    ) -> None:
        self.app = app
        self.listener = listener
        self.error_body = error_body
        self.shown_path = shown_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _caller_id(scope) or secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message, headers=[*message.get("headers", ()), header])
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            path = self.shown_path(scope["path"])
            log.debug("%s %s %s: client went away [%s]", self.listener, scope["method"], path, rid)
        except Exception as exc:
            path = self.shown_path(scope["path"])
            log.error("%s %s %s failed: %s: %s [request %s]", self.listener, scope["method"],
                      path, type(exc).__name__, exc, rid)  # fmt: skip
            log.debug("traceback of request %s", rid, exc_info=True)
            if started:
                return  # the status line is gone: closing the stream is all that is left
            message = f"internal error while handling this request (request id {rid})"
            body = json.dumps(self.error_body(scope, message)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        header,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


def _caller_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode("ascii") if _CALLER_ID.fullmatch(value) else None
    return None
