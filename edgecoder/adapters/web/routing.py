"""How a client API route is built: authenticated, in its dialect, refusals logged once.

Every route but the public ones (``/healthz``, ``/openapi.json``) authenticates its
caller before its handler runs; every :class:`~edgecoder.errors.EdgeCoderError` a handler
raises becomes the dialect's answer, naming the node in ``X-EdgeCoder-Node`` and logged
as one line with the request id. The route also leaves its dialect in
``scope["state"]["dialect"]``, so the request guard answers an unexpected failure in the
same shape (:func:`internal_error_body`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from edgecoder.access import AccessControl
from edgecoder.adapters.request_guard import request_id
from edgecoder.adapters.web.auth import authenticate
from edgecoder.adapters.web.dialects import OPENAI, Dialect
from edgecoder.errors import AuthError, EdgeCoderError, RateLimitedError

__all__ = ("Handler", "RouteMaker", "internal_error_body")

Handler = Callable[[Request], Awaitable[Response]]

log = logging.getLogger(__name__)


class RouteMaker:
    """Builds routes over one node's access control, naming the node that answers."""

    def __init__(self, access: AccessControl, node_id: Callable[[], str]) -> None:
        self.access = access
        self.node_id = node_id

    def __call__(
        self,
        path: str,
        handler: Handler,
        dialect: Dialect,
        methods: Sequence[str],
        *,
        public: bool = False,
    ) -> Route:
        """A route at ``path`` answering in ``dialect``; ``public`` ones need no key."""

        async def endpoint(request: Request) -> Response:
            request.scope.setdefault("state", {})["dialect"] = dialect
            try:
                if not public:
                    request.state.principal = await authenticate(request, self.access, dialect)
                return await handler(request)
            except EdgeCoderError as exc:
                return self.refusal(request, dialect, exc)

        return Route(path, endpoint, methods=list(methods))

    def refusal(self, request: Request, dialect: Dialect, exc: EdgeCoderError) -> Response:
        """The dialect's answer to ``exc``, logged as one line."""
        response = dialect.error_response(exc)
        response.headers["X-EdgeCoder-Node"] = self.node_id()
        # A bad key is worth a line (failures are limited per address); a rate refusal
        # can come by the thousand.
        if isinstance(exc, RateLimitedError):
            level = logging.DEBUG
        elif isinstance(exc, AuthError) or response.status_code < 500:
            level = logging.INFO
        else:
            level = logging.WARNING
        log.log(level, "api %s %s refused %d: %s [request %s]", request.method,
                request.url.path, response.status_code, exc, request_id(request.scope))  # fmt: skip
        return response


def internal_error_body(scope: Scope, message: str) -> object:
    """A 500's body in the dialect of the route that failed (OpenAI's outside any route)."""
    dialect = scope.get("state", {}).get("dialect", OPENAI)
    return dialect.internal_error(message)
