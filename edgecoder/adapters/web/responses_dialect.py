"""OpenAI's Responses API as a dialect: OpenAI's keys and errors, its own body and events.

An answer is a ``response`` object whose ``output`` holds a ``message`` item (the text,
one ``output_text`` part) and one ``function_call`` item per tool call, in the order the
model wrote them. Streamed, it is SSE with an ``event:`` line per event and a
``sequence_number`` on each, in the documented order::

    response.created, response.in_progress
    per message:  response.output_item.added, response.content_part.added,
                  response.output_text.delta…, response.output_text.done,
                  response.content_part.done, response.output_item.done
    per call:     response.output_item.added, response.function_call_arguments.delta,
                  response.function_call_arguments.done, response.output_item.done
    response.completed (or response.incomplete at max_output_tokens)

An error after the stream began is an ``error`` event followed by ``response.failed``.
Nothing is stored: every answer says ``store: false``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from edgecoder.adapters.web import responses_parse
from edgecoder.adapters.web.errors import classify
from edgecoder.adapters.web.generation import Collected
from edgecoder.adapters.web.openai_dialect import OpenAIDialect
from edgecoder.adapters.web.parsed import ParsedChat
from edgecoder.adapters.web.requests import Fields
from edgecoder.adapters.web.responses_parse import ParsedResponse
from edgecoder.adapters.web.streams import KEEPALIVE, Framing, dumps, sse
from edgecoder.errors import EdgeCoderError
from edgecoder.inference.types import Delta, ToolCall, Usage

__all__ = ("RESPONSES", "ResponseAnswer", "ResponsesDialect")

RESPONSES_SSE = Framing("text/event-stream", sse, b"", KEEPALIVE)
"""Named events, nothing after the last, ``: keep-alive`` comments in silences."""


def _usage(usage: Usage) -> dict[str, object]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _text_part(text: str) -> dict[str, object]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponseAnswer:
    """One ``response`` (``resp_…``), whole or as its event stream."""

    def __init__(self, parsed: ParsedResponse) -> None:
        self.id = f"resp_{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.model = parsed.request.model
        self.echo = parsed.echo
        self._sequence = 0

    def response(
        self, status: str, output: list[object], usage: Usage | None, error: object = None
    ) -> dict[str, object]:
        """The ``response`` object in ``status``."""
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "background": False, "error": error, "incomplete_details": incomplete,
            "model": self.model, "output": output, "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
            "store": False, "usage": _usage(usage) if usage else None, **self.echo,
        }  # fmt: skip

    @staticmethod
    def message(item_id: str, text: str, status: str) -> dict[str, object]:
        """A ``message`` output item."""
        content = [_text_part(text)] if status == "completed" else []
        return {"type": "message", "id": item_id, "status": status, "role": "assistant",
                "content": content}  # fmt: skip

    @staticmethod
    def function_call(call: ToolCall, arguments: str, status: str) -> dict[str, object]:
        """A ``function_call`` output item (its id is ``fc_`` and the call's own id)."""
        return {"type": "function_call", "id": f"fc_{call.id}", "call_id": call.id,
                "name": call.name, "arguments": arguments, "status": status}  # fmt: skip

    def body(self, done: Collected) -> object:
        """The whole ``response``, with ``output_text`` as the SDKs compute it."""
        output: list[object] = []
        if done.text or not done.tool_calls:
            output.append(self.message(f"msg_{secrets.token_hex(12)}", done.text, "completed"))
        output += [self.function_call(c, c.arguments, "completed") for c in done.tool_calls]
        status = "incomplete" if done.finish_reason == "length" else "completed"
        return {**self.response(status, output, done.usage), "output_text": done.text}

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + dumps(payload) + b"\n\n"

    async def frames(self, stream: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
        """The events (see the module's docstring); closing this closes ``stream``."""
        event = self._event
        output: list[object] = []
        message_id, text = "", ""
        yield event("response.created", response=self.response("in_progress", [], None))
        yield event("response.in_progress", response=self.response("in_progress", [], None))

        def close_message() -> list[bytes]:
            nonlocal message_id
            if not message_id:
                return []
            ids = {"item_id": message_id, "output_index": len(output), "content_index": 0}
            item = self.message(message_id, text, "completed")
            message_id = ""
            output.append(item)
            return [event("response.output_text.done", **ids, text=text, logprobs=[]),
                    event("response.content_part.done", **ids, part=_text_part(text)),
                    event("response.output_item.done", output_index=ids["output_index"],
                          item=item)]  # fmt: skip

        def open_message() -> list[bytes]:
            nonlocal message_id, text
            message_id, text = f"msg_{secrets.token_hex(12)}", ""
            index = len(output)
            return [event("response.output_item.added", output_index=index,
                          item=self.message(message_id, "", "in_progress")),
                    event("response.content_part.added", item_id=message_id, output_index=index,
                          content_index=0, part=_text_part(""))]  # fmt: skip

        begun: set[str] = set()  # calls announced before they were whole
        current = ""  # the call whose arguments are being written

        def calls(delta: Delta) -> list[bytes]:
            nonlocal current
            out = close_message()
            index = len(output)  # a call's item is appended to output when it is done
            if delta.tool_call_start is not None:
                call = delta.tool_call_start
                begun.add(call.id)
                current = f"fc_{call.id}"
                out.append(event("response.output_item.added", output_index=index,
                                 item=self.function_call(call, "", "in_progress")))  # fmt: skip
            if delta.tool_call_text and current:
                out.append(event("response.function_call_arguments.delta", item_id=current,
                                 output_index=index, delta=delta.tool_call_text))  # fmt: skip
            for call in delta.tool_calls:
                index, item_id = len(output), f"fc_{call.id}"
                if call.id not in begun:
                    out.append(event("response.output_item.added", output_index=index,
                                     item=self.function_call(call, "", "in_progress")))  # fmt: skip
                    out.append(event("response.function_call_arguments.delta",
                                     item_id=item_id, output_index=index,
                                     delta=call.arguments))  # fmt: skip
                out.append(event("response.function_call_arguments.done", item_id=item_id,
                                 output_index=index, name=call.name,
                                 arguments=call.arguments))  # fmt: skip
                item = self.function_call(call, call.arguments, "completed")
                output.append(item)
                out.append(event("response.output_item.done", output_index=index, item=item))
            return out

        usage, finish = Usage(0, 0), "stop"
        try:
            async for delta in stream:
                if delta.text:
                    if not message_id:
                        for framed in open_message():
                            yield framed
                    text += delta.text
                    yield event("response.output_text.delta", item_id=message_id,
                                output_index=len(output), content_index=0, delta=delta.text,
                                logprobs=[])  # fmt: skip
                if delta.tool_calls or delta.tool_call_start or delta.tool_call_text:
                    for framed in calls(delta):
                        yield framed
                if delta.finish_reason is not None:
                    finish, usage = delta.finish_reason, delta.usage or usage
        except EdgeCoderError as exc:
            _, _, code, param = classify(exc)
            yield event("error", code=code, message=str(exc), param=param)
            error = {"code": code or "server_error", "message": str(exc)}
            yield event("response.failed", response=self.response("failed", output, None, error))
            return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if not output and not message_id:
            for framed in open_message():
                yield framed
        for framed in close_message():
            yield framed
        status = "incomplete" if finish == "length" else "completed"
        yield event(f"response.{status}", response=self.response(status, output, usage))


class ResponsesDialect(OpenAIDialect):
    """OpenAI's keys, errors and statuses; Responses bodies and events."""

    name = "responses"
    framing = RESPONSES_SSE

    def parse_chat(self, fields: Fields) -> ParsedChat:
        return responses_parse.parse_response(fields)

    def chat_answer(self, parsed: ParsedChat) -> ResponseAnswer:  # type: ignore[override]
        assert isinstance(parsed, ParsedResponse)
        return ResponseAnswer(parsed)

    def stream_error(self, exc: EdgeCoderError) -> bytes:
        return b"event: error\ndata: " + json.dumps(self.error_body(exc)).encode() + b"\n\n"


RESPONSES = ResponsesDialect()
"""The Responses API's dialect (``POST /v1/responses``)."""
