"""API-key authentication and per-key rate limits for the client listener (pure ASGI).

A key arrives as ``Authorization: Bearer <key>``, or — for clients that take only a URL,
such as VS Code Copilot's Ollama provider — as a path prefix ``/k/<key>/...``, which is
stripped before routing. Open paths (``/healthz``, ``/openapi.json``) need no key.
Failed attempts are limited per client address
(:meth:`~edgecoder.access.AccessControl.check_address`). The principal is left in
``scope["state"]["principal"]``, and the arrival time (``perf_counter``) in
``scope["state"]["arrived"]`` for the ``Server-Timing`` header.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from edgecoder.access import AccessControl
from edgecoder.adapters.request_guard import request_id
from edgecoder.adapters.web.errors import error_response
from edgecoder.errors import AuthError, RateLimitedError

__all__ = ("OPEN_PATHS", "KeyAuthMiddleware", "shown_path")

OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})
_PREFIX = "/k/"

log = logging.getLogger(__name__)


class KeyAuthMiddleware:
    """Refuses requests without a valid key (401) or over their rate (429)."""

    def __init__(self, app: ASGIApp, access: AccessControl) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()
        path: str = scope["path"]
        key = None
        if path.startswith(_PREFIX):
            key, _, rest = path[len(_PREFIX) :].partition("/")
            scope = dict(scope, path="/" + rest, raw_path=("/" + rest).encode())
            path = scope["path"]
        if path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if key is None:
            key = _bearer(scope)
        ollama = path.startswith("/api/")
        address = (scope.get("client") or ("unknown", 0))[0]
        try:
            self.access.check_address(address)
            try:
                principal = await self.access.authenticate(key)
            except AuthError:
                self.access.record_failure(address)
                raise
            self.access.check_rate(principal)
        except (AuthError, RateLimitedError) as exc:
            # Failures are few (limited per address); rate refusals can be a flood.
            level = logging.INFO if isinstance(exc, AuthError) else logging.DEBUG
            log.log(level, "api %s %s refused: %s [request %s]", scope["method"],
                    shown_path(path), exc, request_id(scope))  # fmt: skip
            await error_response(exc, ollama=ollama)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["arrived"] = arrived
        await self.app(scope, receive, send)


def shown_path(path: str) -> str:
    """``path`` with a ``/k/<key>/`` prefix masked, fit for a log line."""
    if not path.startswith(_PREFIX):
        return path
    return _PREFIX + "***/" + path[len(_PREFIX) :].partition("/")[2]


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
            return None
    return None
