"""Reading request bodies: bounded in size, JSON objects only, fields checked by name."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request

from edgecoder.adapters.web import strict_json
from edgecoder.adapters.web.errors import ApiError, payload_too_large
from edgecoder.adapters.web.request_limits import MAX_STOP_CHARS, MAX_STOPS, MAX_TOOLS, at_most
from edgecoder.errors import BadRequestError
from edgecoder.inference.types import ToolCall

__all__ = (
    "BODY_TIMEOUT_S",
    "Fields",
    "item_fields",
    "parse_tool_calls",
    "read_json",
    "whole_number",
)


BODY_TIMEOUT_S = 120.0
"""Longest a client may take to send a body (16 MiB at 140 KB/s); then ``408``."""


async def read_json(request: Request, limit: int) -> Fields:
    """Read the body as a JSON object of at most ``limit`` bytes.

    :raises ApiError: over the limit (413), or not sent within :data:`BODY_TIMEOUT_S` (408).
    :raises BadRequestError: not strict JSON (:mod:`~edgecoder.adapters.web.strict_json`),
        or not an object.
    """
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise payload_too_large(limit)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            raw = await _read_body(request, limit)
    except TimeoutError:
        raise ApiError(
            408, f"the request body was not sent within {BODY_TIMEOUT_S:.0f} s", "request_timeout"
        ) from None
    body = strict_json.decode(raw)
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    return Fields(body)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise payload_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def whole_number(raw: str, name: str, low: int, high: int) -> int:
    """A query or path parameter as a whole number from ``low`` to ``high``.

    Only ASCII digits count (``str.isdigit`` also admits ``"²"`` and Arabic-Indic
    digits), and the length is checked before conversion.

    :raises BadRequestError: naming ``name`` and the range.
    """
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(high)) and low <= int(raw) <= high:
        return int(raw)
    raise BadRequestError(f"'{name}' must be a whole number from {low} to {high}", name)


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
        """A stop string or an array of them, within the request limits."""
        value = self.data.get(key)
        name = self._name(key)
        if value is None:
            return ()
        stops = (value,) if isinstance(value, str) else value
        if not isinstance(stops, list | tuple) or not all(isinstance(s, str) for s in stops):
            raise BadRequestError(f"'{name}' must be a string or an array of strings", name)
        at_most(stops, MAX_STOPS, name, "stop strings")
        if any(len(s) > MAX_STOP_CHARS for s in stops):
            raise BadRequestError(
                f"'{name}' has a stop string longer than {MAX_STOP_CHARS} characters", name
            )
        return tuple(stops)


def item_fields(item: Any, where: str) -> Fields:
    """An array element that must be an object, as :class:`Fields` named ``where``.

    :raises BadRequestError: ``item`` is not an object.
    """
    if not isinstance(item, dict):
        raise BadRequestError(f"'{where}' must be an object", where)
    return Fields(item, prefix=f"{where}.")


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
    at_most(raw, MAX_TOOLS, where, "tool calls")
    calls = []
    for i, call in enumerate(raw):
        fields = item_fields(call, f"{where}[{i}]")
        fn = fields.mapping("function")
        name = fn.text("name") if fn is not None else None
        if fn is None or name is None:
            raise BadRequestError(f"'{where}[{i}].function.name' is required", f"{where}[{i}]")
        args = fn.data.get("arguments", {})
        text = args if isinstance(args, str) else json.dumps(args)
        call_id = fields.text("id") or f"call_{i}"
        calls.append(ToolCall(id=call_id, name=name, arguments=text))
    return tuple(calls)
