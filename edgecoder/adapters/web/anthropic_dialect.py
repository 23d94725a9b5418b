"""Anthropic's dialect (the Messages API): its keys, error shape, event stream and answers.

Keys come as ``x-api-key`` (Anthropic's SDKs, Claude Code) or ``Authorization: Bearer``.
Errors are ``{"type": "error", "error": {"type", "message"}}`` with Anthropic's statuses
(``overloaded_error`` is 529). A streamed answer is SSE with an ``event:`` line on every
event, in the Messages API's order::

    message_start
    content_block_start (text or tool_use), ping
    content_block_delta (text_delta, or input_json_delta pieces of a tool's input)…
    content_block_stop
    … one start/deltas/stop per further block …
    message_delta (stop_reason, stop_sequence, usage), message_stop

Blocks open when their first content arrives, so an answer that only calls tools has
only ``tool_use`` blocks; an answer with no content at all gets one empty text block.
``ping`` events also fill long silences (prompt reading, waiting for a slot). The input
token count is known only once the backend reports usage, so ``message_start`` carries 0
and ``message_delta`` the real count (the SDKs take the later value).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import ClassVar

from starlette.datastructures import Headers

from edgecoder.adapters.web import anthropic_parse
from edgecoder.adapters.web.dialect import Dialect
from edgecoder.adapters.web.generation import Collected
from edgecoder.adapters.web.parsed import ParsedChat
from edgecoder.adapters.web.requests import Fields
from edgecoder.adapters.web.streams import Framing, dumps
from edgecoder.errors import EdgeCoderError, OverloadedError
from edgecoder.inference.types import ChatRequest, Delta, FinishReason, ToolCall, Usage

__all__ = ("ANTHROPIC", "AnthropicDialect", "MessageAnswer", "tool_input")

_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def event(kind: str, payload: dict[str, object]) -> bytes:
    """One SSE event with its ``event:`` line, as Anthropic frames every event."""
    return b"event: " + kind.encode() + b"\ndata: " + dumps({"type": kind, **payload}) + b"\n\n"


PING = event("ping", {})
ANTHROPIC_SSE = Framing("text/event-stream", lambda obj: dumps(obj), b"", PING)
"""Anthropic's stream: named events, nothing after ``message_stop``, ``ping`` keep-alives."""


def tool_input(call: ToolCall) -> dict[str, object]:
    """A call's arguments as the object a ``tool_use`` block's ``input`` must be."""
    try:
        value = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {}


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": usage.completion_tokens,
    }


class MessageAnswer:
    """A ``message`` (``msg_…``), whole or as the Messages API's event stream."""

    def __init__(self, dialect: Dialect, model: str) -> None:
        self.dialect = dialect
        self.id = f"msg_{secrets.token_hex(12)}"
        self.model = model

    def _message(
        self, content: list[object], stop: str | None, usage: Usage, sequence: str = ""
    ) -> dict[str, object]:
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": stop, "stop_sequence": sequence or None,
                "usage": _usage(usage)}  # fmt: skip

    def body(self, done: Collected) -> object:
        """The whole ``message``: a text block (when there is text), then the tool calls."""
        content: list[object] = []
        if done.text or not done.tool_calls:
            content.append({"type": "text", "text": done.text})
        content += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(c)}
            for c in done.tool_calls
        ]
        reason = "stop_sequence" if done.stop_sequence else _STOP_REASONS[done.finish_reason]
        return self._message(content, reason, done.usage, done.stop_sequence)

    def frames(self, stream: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
        """The events; blocks open as their content arrives (see the module's docstring)."""
        index = -1
        open_kind = ""  # the open block's type, "" when none is open
        pinged = False
        begun: set[str] = set()  # calls announced before they were whole

        def start(block: dict[str, object]) -> list[bytes]:
            nonlocal index, open_kind, pinged
            out = close()
            index += 1
            open_kind = str(block["type"])
            out.append(event("content_block_start", {"index": index, "content_block": block}))
            if not pinged:
                pinged = True
                out.append(PING)
            return out

        def close() -> list[bytes]:
            nonlocal open_kind
            if not open_kind:
                return []
            open_kind = ""
            return [event("content_block_stop", {"index": index})]

        def piece(delta: dict[str, object]) -> bytes:
            return event("content_block_delta", {"index": index, "delta": delta})

        def frame(delta: Delta) -> list[bytes]:
            out: list[bytes] = []
            if delta.text:
                if open_kind != "text":
                    out += start({"type": "text", "text": ""})
                out.append(piece({"type": "text_delta", "text": delta.text}))
            if delta.tool_call_start is not None:
                call = delta.tool_call_start
                begun.add(call.id)
                out += start({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
            if delta.tool_call_text and open_kind == "tool_use":
                out.append(piece({"type": "input_json_delta",
                                  "partial_json": delta.tool_call_text}))  # fmt: skip
            for call in delta.tool_calls:
                if call.id in begun:
                    out += close()  # its input already streamed
                    continue
                out += start({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
                arguments = json.dumps(tool_input(call))
                out.append(piece({"type": "input_json_delta", "partial_json": arguments}))
            if delta.finish_reason is not None:
                if index < 0:
                    out += start({"type": "text", "text": ""})
                out += close()
                usage = _usage(delta.usage or Usage(0, 0))
                sequence = delta.stop_sequence
                reason = "stop_sequence" if sequence else _STOP_REASONS[delta.finish_reason]
                out.append(event("message_delta", {
                    "delta": {"stop_reason": reason, "stop_sequence": sequence or None},
                    "usage": usage}))  # fmt: skip
                out.append(event("message_stop", {}))
            return out

        async def frames() -> AsyncIterator[bytes]:
            yield event("message_start", {"message": self._message([], None, Usage(0, 0))})
            async for framed in self.dialect.relay(stream, frame):
                yield framed

        return frames()


class AnthropicDialect(Dialect):
    """``{"type": "error", "error": {...}}``; streams as named SSE events."""

    name = "anthropic"
    framing = ANTHROPIC_SSE
    stream_headers: ClassVar[dict[str, str]] = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    }

    def key(self, headers: Headers) -> str | None:
        """``x-api-key`` (Anthropic's own clients), else ``Authorization: Bearer``."""
        key = headers.get("x-api-key", "").strip()
        return key or super().key(headers)

    def status(self, exc: EdgeCoderError) -> int:
        """Anthropic's statuses: a full queue is its ``529 overloaded_error``."""
        return 529 if isinstance(exc, OverloadedError) else super().status(exc)

    def error_body(self, exc: EdgeCoderError) -> object:
        return self._error(self.status(exc), str(exc))

    @staticmethod
    def _error(status: int, message: str) -> dict[str, object]:
        default = "api_error" if status >= 500 else "invalid_request_error"
        kind = _ERROR_TYPES.get(status, default)
        return {"type": "error", "error": {"type": kind, "message": message}}

    def internal_error(self, message: str) -> object:
        return self._error(500, message)

    def stream_error(self, exc: EdgeCoderError) -> bytes:
        body = self.error_body(exc)
        assert isinstance(body, dict)
        return event("error", {k: v for k, v in body.items() if k != "type"})

    def parse_chat(self, fields: Fields) -> ParsedChat:
        return anthropic_parse.parse_messages(fields)

    def chat_answer(self, parsed: ParsedChat) -> MessageAnswer:
        return MessageAnswer(self, parsed.request.model)

    def parse_count_tokens(self, fields: Fields) -> ChatRequest:
        """A ``/v1/messages/count_tokens`` body."""
        return anthropic_parse.parse_count_tokens(fields)

    def token_count(self, tokens: int) -> object:
        """``count_tokens``'s answer."""
        return {"input_tokens": tokens}


ANTHROPIC = AnthropicDialect()
