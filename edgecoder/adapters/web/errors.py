"""The one mapping from EdgeCoder errors to HTTP: status plus an OpenAI-shaped body.

``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`` is what the
OpenAI SDKs, Continue and Cursor parse; the Ollama routes reuse the message as
``{"error": message}``, Ollama's own shape.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edgecoder.adapters.request_guard import request_id
from edgecoder.errors import (
    AuthError,
    BackendUnavailableError,
    BadRequestError,
    ContextOverflowError,
    DiskFullError,
    EdgeCoderError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitedError,
    StorageError,
    UnsupportedError,
)

__all__ = (
    "ApiError",
    "Handler",
    "error_body",
    "error_response",
    "guarded",
    "payload_too_large",
    "sse_error",
)

Handler = Callable[[Request], Awaitable[Response]]

log = logging.getLogger(__name__)


class ApiError(EdgeCoderError):
    """An HTTP-level refusal with its own status (413, 415...)."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


def payload_too_large(limit: int) -> ApiError:
    """The 413 for a body over ``limit`` bytes."""
    return ApiError(413, f"request body exceeds {limit} bytes", "request_too_large")


def _classify(exc: EdgeCoderError) -> tuple[int, str, str | None, str | None]:
    """(status, type, code, param) of an error."""
    if isinstance(exc, ApiError):
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        return exc.status, kind, exc.code, exc.param
    if isinstance(exc, AuthError):
        return 401, "invalid_request_error", "invalid_api_key", None
    if isinstance(exc, RateLimitedError):
        return 429, "requests", "rate_limit_exceeded", None
    if isinstance(exc, ModelNotFoundError):
        return 404, "invalid_request_error", "model_not_found", "model"
    if isinstance(exc, ContextOverflowError):
        return 400, "invalid_request_error", "context_length_exceeded", "messages"
    if isinstance(exc, BadRequestError):
        return 400, "invalid_request_error", "invalid_request", exc.param
    if isinstance(exc, UnsupportedError):
        return 400, "invalid_request_error", "unsupported", None
    if isinstance(exc, OverloadedError):
        return 503, "server_error", "overloaded", None
    if isinstance(exc, BackendUnavailableError):
        return 503, "server_error", "backend_unavailable", None
    if isinstance(exc, DiskFullError):
        return 507, "server_error", "insufficient_storage", None
    if isinstance(exc, StorageError):
        return 503, "server_error", "storage_unavailable", None
    return 500, "server_error", "internal_error", None


def error_body(exc: EdgeCoderError) -> tuple[int, dict[str, object]]:
    """Status and OpenAI-shaped body for an error."""
    status, kind, code, param = _classify(exc)
    return status, {"error": {"message": str(exc), "type": kind, "param": param, "code": code}}


def error_response(exc: EdgeCoderError, *, ollama: bool = False) -> JSONResponse:
    """The HTTP response for an error, in OpenAI's shape (or Ollama's)."""
    status, body = error_body(exc)
    headers = {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    elif isinstance(exc, OverloadedError):
        headers["Retry-After"] = "1"
    elif isinstance(exc, StorageError):
        headers["Retry-After"] = "5"
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="edgecoder"'
    content: object = {"error": str(exc)} if ollama else body
    return JSONResponse(content, status_code=status, headers=headers)


def sse_error(exc: EdgeCoderError) -> bytes:
    """An error that happens after a stream began, as one SSE event."""
    return b"data: " + json.dumps(error_body(exc)[1]).encode() + b"\n\n"


def guarded(handler: Handler, node_id: Callable[[], str], *, ollama: bool = False) -> Handler:
    """Wrap a route so every EdgeCoder error becomes its response, naming the node."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except EdgeCoderError as exc:
            response = error_response(exc, ollama=ollama)
            response.headers["X-EdgeCoder-Node"] = node_id()
            log.log(
                logging.INFO if response.status_code < 500 else logging.WARNING,
                "api %s %s refused %d: %s [request %s]",
                request.method, request.url.path, response.status_code, exc,
                request_id(request.scope),
            )  # fmt: skip
            return response

    return endpoint
