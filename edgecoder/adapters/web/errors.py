"""The one mapping from EdgeCoder errors to HTTP statuses (and OpenAI's error types).

Each dialect (:mod:`edgecoder.adapters.web.dialects`) shapes the body from
:func:`classify`: OpenAI's ``{"error": {"message", "type", "param", "code"}}``, which the
OpenAI SDKs, Continue and Cursor parse, or Ollama's ``{"error": message}``.
"""

from __future__ import annotations

from edgecoder.errors import (
    AuthError,
    BackendUnavailableError,
    BadRequestError,
    ContextOverflowError,
    DiskFullError,
    EdgeCoderError,
    InsufficientCreditsError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitedError,
    StorageError,
    UnsupportedError,
)

__all__ = ("ApiError", "classify", "payload_too_large")


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


def classify(exc: EdgeCoderError) -> tuple[int, str, str | None, str | None]:
    """(status, OpenAI error type, code, param) of an error: the one mapping to HTTP."""
    if isinstance(exc, ApiError):
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        return exc.status, kind, exc.code, exc.param
    if isinstance(exc, AuthError):
        return 401, "invalid_request_error", "invalid_api_key", None
    if isinstance(exc, RateLimitedError):
        return 429, "requests", "rate_limit_exceeded", None
    if isinstance(exc, InsufficientCreditsError):
        # 402, never 429: IDE clients retry a 429 for ever (docs/ledger.md §4).
        return 402, "insufficient_quota", "insufficient_credits", None
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
