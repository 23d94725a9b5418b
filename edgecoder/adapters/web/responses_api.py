"""OpenAI's Responses API (``POST /v1/responses``) for clients that use it.

A text-only subset: ``input`` (string or message items), ``instructions``,
``max_output_tokens``, sampling fields; one ``message`` output item with one
``output_text`` part. Streams are SSE with ``event:`` lines, in OpenAI's order:
``response.created``, ``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta``…, ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done``, ``response.completed``.
Stateless: ``previous_response_id`` and ``store`` are refused or ignored, not faked.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edgecoder.adapters.web.dialects import OPENAI
from edgecoder.adapters.web.generation import admit, collect
from edgecoder.adapters.web.requests import read_json
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.adapters.web.streams import heartbeat
from edgecoder.errors import BadRequestError
from edgecoder.inference.types import Delta, Usage
from edgecoder.services import Services

__all__ = ("responses_routes",)


def _event(kind: str, sequence: int, **fields: object) -> bytes:
    payload = {"type": kind, "sequence_number": sequence, **fields}
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()


def _usage(usage: Usage) -> dict[str, object]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


class _Shape:
    """The ids and fixed fields of one response."""

    def __init__(self, model: str, max_output_tokens: int | None) -> None:
        self.id = f"resp_{secrets.token_hex(12)}"
        self.message_id = f"msg_{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.model = model
        self.max_output_tokens = max_output_tokens

    def message(self, text: str | None, status: str) -> dict[str, object]:
        content = [] if text is None else [
            {"type": "output_text", "text": text, "annotations": []}
        ]  # fmt: skip
        return {"type": "message", "id": self.message_id, "status": status,
                "role": "assistant", "content": content}  # fmt: skip

    def response(self, status: str, output: list[object], usage: Usage | None) -> dict[str, object]:
        incomplete = None
        if status == "incomplete":
            incomplete = {"reason": "max_output_tokens"}
        return {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "model": self.model, "output": output, "error": None,
            "incomplete_details": incomplete, "instructions": None, "metadata": {},
            "max_output_tokens": self.max_output_tokens, "parallel_tool_calls": False,
            "tool_choice": "auto", "tools": [], "temperature": None, "top_p": None,
            "usage": _usage(usage) if usage else None,
        }  # fmt: skip


def responses_routes(services: Services, route: RouteMaker) -> list[Route]:
    """The ``/v1/responses`` route over ``services``."""
    limit = services.config.api.max_body_bytes
    keepalive = float(services.config.api.keepalive_s)

    async def create(request: Request) -> Response:
        fields = await read_json(request, limit)
        if fields.has("previous_response_id"):
            raise BadRequestError(
                "'previous_response_id': this node keeps no response state; "
                "send the whole conversation in 'input'",
                "previous_response_id",
            )
        if not fields.has("input"):
            raise BadRequestError("'input' is required", "input")
        parsed = OPENAI.parse_chat(fields)
        shape = _Shape(parsed.request.model, parsed.request.sampling.max_tokens)
        stream = await admit(services.chat(parsed.request))
        headers = {"X-EdgeCoder-Node": services.served_by(stream)}
        if parsed.stream:
            return StreamingResponse(
                heartbeat(_events(stream, shape), keepalive),
                media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache"},
            )
        done = await collect(request, stream)
        if done is None:
            return Response(status_code=499)
        status = "incomplete" if done.finish_reason == "length" else "completed"
        body = shape.response(status, [shape.message(done.text, "completed")], done.usage)
        body["output_text"] = done.text
        return JSONResponse(body, headers=headers)

    return [route("/v1/responses", create, OPENAI, ["POST"])]


async def _events(stream: AsyncIterator[Delta], shape: _Shape) -> AsyncIterator[bytes]:
    sequence = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal sequence
        sequence += 1
        return _event(kind, sequence - 1, **fields)

    ids = {"item_id": shape.message_id, "output_index": 0, "content_index": 0}
    yield event("response.created", response=shape.response("in_progress", [], None))
    yield event("response.in_progress", response=shape.response("in_progress", [], None))
    yield event("response.output_item.added", output_index=0,
                item=shape.message(None, "in_progress"))  # fmt: skip
    yield event("response.content_part.added", **ids,
                part={"type": "output_text", "text": "", "annotations": []})  # fmt: skip
    parts: list[str] = []
    usage, finish = Usage(0, 0), "stop"
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for delta in stream:
            if delta.text:
                parts.append(delta.text)
                yield event("response.output_text.delta", **ids, delta=delta.text, logprobs=[])
            if delta.finish_reason is not None:
                finish = delta.finish_reason
                usage = delta.usage or usage
    text = "".join(parts)
    yield event("response.output_text.done", **ids, text=text, logprobs=[])
    yield event("response.content_part.done", **ids,
                part={"type": "output_text", "text": text, "annotations": []})  # fmt: skip
    item = shape.message(text, "completed")
    yield event("response.output_item.done", output_index=0, item=item)
    status = "incomplete" if finish == "length" else "completed"
    final = "response.incomplete" if status == "incomplete" else "response.completed"
    yield event(final, response=shape.response(status, [item], usage))
