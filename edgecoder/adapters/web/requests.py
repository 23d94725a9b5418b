"""Reading request bodies: bounded in size, JSON objects only, fields checked by name."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from edgecoder.adapters.web.errors import payload_too_large
from edgecoder.errors import BadRequestError
from edgecoder.inference.types import ToolCall

__all__ = ("Fields", "parse_tool_calls", "read_json")


async def read_json(request: Request, limit: int) -> Fields:
    """Read the body as a JSON object of at most ``limit`` bytes.

    :raises ApiError: over the limit (413).
    :raises BadRequestError: not JSON, or not an object.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise payload_too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise payload_too_large(limit)
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    return Fields(body)


class Fields:
    """Typed access to a JSON object's fields, with errors that name the field."""

    def __init__(self, data: dict[str, Any], prefix: str = "") -> None:
        self.data = data
        self._prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def has(self, key: str) -> bool:
        """Present and not null."""
        return self.data.get(key) is not None

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise BadRequestError(f"'{self._name(key)}' is required", self._name(key))
            return default
        if not isinstance(value, str):
            raise BadRequestError(f"'{self._name(key)}' must be a string", self._name(key))
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise BadRequestError(f"'{self._name(key)}' must be true or false", self._name(key))
        return value

    def integer(self, key: str, *, minimum: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequestError(f"'{self._name(key)}' must be an integer", self._name(key))
        if minimum is not None and value < minimum:
            raise BadRequestError(
                f"'{self._name(key)}' must be at least {minimum}", self._name(key)
            )
        return value

    def number(self, key: str, low: float, high: float) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequestError(f"'{self._name(key)}' must be a number", self._name(key))
        if not low <= value <= high:
            raise BadRequestError(
                f"'{self._name(key)}' must be between {low} and {high}", self._name(key)
            )
        return float(value)

    def array(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise BadRequestError(f"'{self._name(key)}' must be an array", self._name(key))
        return value

    def mapping(self, key: str) -> Fields | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise BadRequestError(f"'{self._name(key)}' must be an object", self._name(key))
        return Fields(value, prefix=f"{self._name(key)}.")

    def stops(self, key: str = "stop") -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(s, str) for s in value) and len(value) <= 16:
            return tuple(value)
        raise BadRequestError(
            f"'{self._name(key)}' must be a string or an array of at most 16 strings",
            self._name(key),
        )


def parse_tool_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    """Tool calls in a message's history, in either dialect.

    OpenAI sends ``arguments`` as a JSON string and an ``id``; Ollama sends an object and
    no id. Both become a :class:`ToolCall` with JSON-text arguments.

    :raises BadRequestError: not an array, or a call without ``function.name``.
    """
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise BadRequestError(f"'{where}' must be an array", where)
    calls = []
    for i, call in enumerate(raw):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRequestError(f"'{where}[{i}].function.name' is required", f"{where}[{i}]")
        args = fn.get("arguments", {})
        text = args if isinstance(args, str) else json.dumps(args)
        calls.append(
            ToolCall(id=str(call.get("id") or f"call_{i}"), name=fn["name"], arguments=text)
        )
    return tuple(calls)
