"""API keys on the client listener: where a key comes from, and who it belongs to.

A key arrives as ``Authorization: Bearer <key>`` (each dialect says how its clients send
it), or — for clients that take only a URL, such as VS Code Copilot's Ollama provider —
as a path prefix ``/k/<key>/...``. :class:`PathKeyMiddleware` strips that prefix before
routing and keeps the key in ``scope["state"]["path_key"]``, with the arrival time
(``perf_counter``) in ``scope["state"]["arrived"]`` for the ``Server-Timing`` header.
Each route then runs :func:`authenticate` (see :mod:`edgecoder.adapters.web.routing`):
failed attempts are limited per client address, requests per key.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from edgecoder.access import AccessControl, Principal
from edgecoder.adapters.web.dialects import Dialect
from edgecoder.errors import AuthError

__all__ = ("PathKeyMiddleware", "authenticate", "shown_path")

_PREFIX = "/k/"


class PathKeyMiddleware:
    """Strips a ``/k/<key>/`` prefix, keeping the key for :func:`authenticate`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["arrived"] = time.perf_counter()
        path: str = scope["path"]
        if path.startswith(_PREFIX):
            key, _, rest = path[len(_PREFIX) :].partition("/")
            state["path_key"] = key
            scope = dict(scope, path="/" + rest, raw_path=("/" + rest).encode())
        await self.app(scope, receive, send)


async def authenticate(request: Request, access: AccessControl, dialect: Dialect) -> Principal:
    """The principal behind the request's key, charged one request of its rate.

    :raises RateLimitedError: over the key's rate, or the address failed too often.
    :raises AuthError: no key, or not a valid one (counted against the address).
    """
    address = request.client.host if request.client else "unknown"
    key = request.scope.get("state", {}).get("path_key") or dialect.key(request.headers)
    access.check_address(address)
    try:
        principal = await access.authenticate(key)
    except AuthError:
        access.record_failure(address)
        raise
    access.check_rate(principal)
    return principal


def shown_path(path: str) -> str:
    """``path`` with a ``/k/<key>/`` prefix masked, fit for a log line."""
    if not path.startswith(_PREFIX):
        return path
    return _PREFIX + "***/" + path[len(_PREFIX) :].partition("/")[2]
