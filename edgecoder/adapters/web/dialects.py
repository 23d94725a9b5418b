"""The client API's dialects as objects: OpenAI's and Ollama's (Anthropic's to come).

A dialect says how its clients send their key, how an error looks (status, body,
headers), how an error is framed once a stream has begun, and how an internal error is
told. Each route is built with its dialect (:mod:`edgecoder.adapters.web.routing`), so
nothing looks at a path prefix or passes a boolean to choose a shape. Request parsing and
response rendering live beside each dialect (``openai_parse``/``openai_api``,
``ollama_parse``/``ollama_api``).
"""

from __future__ import annotations

import json
import math

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from edgecoder.adapters.web.errors import classify
from edgecoder.errors import EdgeCoderError, OverloadedError, RateLimitedError, StorageError

__all__ = ("OLLAMA", "OPENAI", "Dialect", "OllamaDialect", "OpenAIDialect")


class Dialect:
    """What every dialect shares: statuses, ``Retry-After``, bearer keys."""

    name = "openai"

    def key(self, headers: Headers) -> str | None:
        """The caller's API key: ``Authorization: Bearer <key>``."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def error_body(self, exc: EdgeCoderError) -> object:
        """The JSON body of an error."""
        raise NotImplementedError

    def internal_error(self, message: str) -> object:
        """The JSON body of a 500 whose cause the client must not see."""
        raise NotImplementedError

    def stream_error(self, exc: EdgeCoderError) -> bytes:
        """An error after a stream began, framed as the stream's last item."""
        raise NotImplementedError

    def error_response(self, exc: EdgeCoderError) -> JSONResponse:
        """The whole HTTP answer to an error: status, body and headers."""
        status = classify(exc)[0]
        headers = {}
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        elif isinstance(exc, OverloadedError):
            headers["Retry-After"] = "1"
        elif isinstance(exc, StorageError):
            headers["Retry-After"] = "5"
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="edgecoder"'
        return JSONResponse(self.error_body(exc), status_code=status, headers=headers)


class OpenAIDialect(Dialect):
    """``{"error": {"message", "type", "param", "code"}}``, streams as SSE ``data:`` events."""

    name = "openai"

    def error_body(self, exc: EdgeCoderError) -> object:
        _, kind, code, param = classify(exc)
        return {"error": {"message": str(exc), "type": kind, "param": param, "code": code}}

    def internal_error(self, message: str) -> object:
        return {
            "error": {
                "message": message,
                "type": "server_error",
                "param": None,
                "code": "internal_error",
            }
        }

    def stream_error(self, exc: EdgeCoderError) -> bytes:
        return b"data: " + json.dumps(self.error_body(exc)).encode() + b"\n\n"


class OllamaDialect(Dialect):
    """``{"error": "message"}``, streams as NDJSON lines."""

    name = "ollama"

    def error_body(self, exc: EdgeCoderError) -> object:
        return {"error": str(exc)}

    def internal_error(self, message: str) -> object:
        return {"error": message}

    def stream_error(self, exc: EdgeCoderError) -> bytes:
        return json.dumps(self.error_body(exc)).encode() + b"\n"


OPENAI = OpenAIDialect()
OLLAMA = OllamaDialect()
