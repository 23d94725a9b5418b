"""Inference errors across the mesh: a worker names them by code, the origin raises them again."""

from __future__ import annotations

from edgecoder.errors import (
    BackendUnavailableError,
    BadRequestError,
    ContextOverflowError,
    EdgeCoderError,
    InferenceError,
    ModelNotFoundError,
    OverloadedError,
    UnsupportedError,
)

__all__ = ("RETRYABLE", "code_of", "error_of")

_BY_CLASS: tuple[tuple[type[EdgeCoderError], str], ...] = (
    (ModelNotFoundError, "model_not_found"),
    (ContextOverflowError, "context_length_exceeded"),
    (UnsupportedError, "unsupported"),
    (BadRequestError, "invalid_request"),
    (OverloadedError, "overloaded"),
    (BackendUnavailableError, "backend_unavailable"),
)
RETRYABLE = frozenset(
    {
        "model_not_found",
        "overloaded",
        "backend_unavailable",
        "internal_error",
        "deadline",
        "already_ran",
    }
)
"""Codes after which another worker may well succeed; the others would fail anywhere."""


def code_of(exc: BaseException) -> str:
    """The wire code of an error a worker's generation raised."""
    for cls, code in _BY_CLASS:
        if isinstance(exc, cls):
            return code
    return "internal_error"


def error_of(code: str, message: str) -> InferenceError:
    """The error to raise at the origin for a worker's error event."""
    if code == "context_length_exceeded":
        return ContextOverflowError(message, prompt_tokens=0, context_length=0)
    for cls, known in _BY_CLASS:
        if known == code and cls is not ContextOverflowError:
            if cls is BadRequestError:
                return BadRequestError(message)
            return cls(message)  # type: ignore[return-value]
    return BackendUnavailableError(f"the worker failed: {message}")
