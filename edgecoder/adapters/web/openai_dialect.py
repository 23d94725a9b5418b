"""OpenAI's dialect: its error shape, its SSE framing, and the shape of every answer.

Answers are shaped exactly as OpenAI's: SSE ``data:`` events, the first chat delta
carrying ``role``, a final chunk with ``finish_reason``, an optional usage chunk with
``choices: []`` (``stream_options.include_usage``, which also puts ``"usage": null`` on
every other chunk), then ``data: [DONE]``. Errors are
``{"error": {"message", "type", "param", "code"}}``, which the OpenAI SDKs, Continue and
Cursor parse.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
import time
from collections.abc import AsyncIterator
from typing import ClassVar

from edgecoder import __version__
from edgecoder.adapters.web import openai_parse
from edgecoder.adapters.web.dialect import Dialect
from edgecoder.adapters.web.errors import classify
from edgecoder.adapters.web.generation import Collected
from edgecoder.adapters.web.parsed import ParsedChat, ParsedCompletion
from edgecoder.adapters.web.requests import Fields
from edgecoder.adapters.web.streams import SSE, sse
from edgecoder.errors import EdgeCoderError
from edgecoder.inference.types import (
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    ToolCall,
    Usage,
)

__all__ = (
    "FINGERPRINT",
    "OPENAI",
    "ChatAnswer",
    "CompletionAnswer",
    "FimAnswer",
    "OpenAIDialect",
    "usage_body",
)

FINGERPRINT = f"edgecoder-{__version__}"
"""Every answer's ``system_fingerprint``."""


def usage_body(usage: Usage) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _base(prefix: str, model: str) -> dict[str, object]:
    return {"id": f"{prefix}-{secrets.token_hex(12)}", "created": int(time.time()),
            "model": model, "system_fingerprint": FINGERPRINT}  # fmt: skip


def _calls(calls: tuple[ToolCall, ...]) -> list[dict[str, object]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


class ChatAnswer:
    """A chat completion (``chatcmpl-…``), whole or as ``chat.completion.chunk`` events."""

    prefix = "chatcmpl"

    def __init__(self, dialect: Dialect, model: str, include_usage: bool) -> None:
        self.dialect = dialect
        self.base = _base(self.prefix, model)
        self.include_usage = include_usage

    def body(self, done: Collected) -> object:
        """A ``chat.completion`` object."""
        message: dict[str, object] = {"role": "assistant", "content": done.text, "refusal": None}
        if done.tool_calls:
            message["tool_calls"] = _calls(done.tool_calls)
        return {
            **self.base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": done.finish_reason}],
            "usage": usage_body(done.usage),
        }  # fmt: skip

    async def frames(self, stream: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
        """The chunks, opening with the role chunk at once (admission was the first delta).

        Each tool call streams as OpenAI's do: a fragment with its ``index``, ``id`` and
        name (and empty arguments), then fragments of its arguments as they are written
        (one fragment for a call that came whole); ``index`` counts the calls.
        """
        first = True
        calls_sent = 0
        begun: dict[str, int] = {}  # the index of each call announced before it was whole
        usage_field: dict[str, object] = {"usage": None} if self.include_usage else {}

        def chunk(delta: dict[str, object], finish: str | None) -> bytes:
            return sse({**self.base, "object": "chat.completion.chunk", **usage_field,
                        "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish}]})  # fmt: skip

        def frame(delta: Delta) -> list[bytes]:
            nonlocal first, calls_sent
            out: list[bytes] = []
            body: dict[str, object] = {}
            if first:
                body["role"] = "assistant"
                body["content"] = ""
                first = False
            if delta.text:
                body["content"] = delta.text
            if body:
                out.append(chunk(body, None))

            def opening(call: ToolCall) -> bytes:
                nonlocal calls_sent
                fragment = {"index": calls_sent, "id": call.id, "type": "function",
                            "function": {"name": call.name, "arguments": ""}}  # fmt: skip
                calls_sent += 1
                return chunk({"tool_calls": [fragment]}, None)

            def arguments(index: int, text: str) -> bytes:
                return chunk({"tool_calls": [{"index": index,
                                              "function": {"arguments": text}}]}, None)  # fmt: skip

            if delta.tool_call_start is not None:
                begun[delta.tool_call_start.id] = calls_sent
                out.append(opening(delta.tool_call_start))
            if delta.tool_call_text and begun:
                out.append(arguments(calls_sent - 1, delta.tool_call_text))
            for call in delta.tool_calls:
                if call.id not in begun:
                    out.append(opening(call))
                    out.append(arguments(calls_sent - 1, call.arguments))
            if delta.finish_reason is not None:
                out.append(chunk({}, delta.finish_reason))
                if self.include_usage and delta.usage is not None:
                    out.append(sse({**self.base, "object": "chat.completion.chunk",
                                    "choices": [], "usage": usage_body(delta.usage)}))  # fmt: skip
            return out

        for opening in frame(Delta()):
            yield opening
        async for framed in self.dialect.relay(stream, frame):
            yield framed


class FimAnswer(ChatAnswer):
    """Continue's ``/v1/fim/completions`` answer: chat-shaped, ``fim-…``, no refusal field."""

    prefix = "fim"

    def body(self, done: Collected) -> object:
        return {
            **self.base,
            "object": "chat.completion",
            "choices": [{"index": 0, "logprobs": None, "finish_reason": done.finish_reason,
                         "message": {"role": "assistant", "content": done.text}}],
            "usage": usage_body(done.usage),
        }  # fmt: skip


class CompletionAnswer:
    """A legacy ``text_completion`` (``cmpl-…``), the prompt first when it was echoed."""

    def __init__(self, dialect: Dialect, parsed: ParsedCompletion) -> None:
        self.dialect = dialect
        self.base = _base("cmpl", parsed.request.model)
        self.include_usage = parsed.include_usage
        self.prefix = parsed.request.prompt if parsed.echo else ""

    def body(self, done: Collected) -> object:
        """A ``text_completion`` object."""
        return {
            **self.base,
            "object": "text_completion",
            "choices": [{"index": 0, "text": self.prefix + done.text, "logprobs": None,
                         "finish_reason": done.finish_reason}],
            "usage": usage_body(done.usage),
        }  # fmt: skip

    def frames(self, stream: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
        """``text_completion`` events, the echoed prompt in the first."""
        usage_field: dict[str, object] = {"usage": None} if self.include_usage else {}
        pending = self.prefix

        def frame(delta: Delta) -> list[bytes]:
            nonlocal pending
            out: list[bytes] = []
            text, pending = pending + delta.text, ""
            if text or delta.finish_reason is not None:
                out.append(sse({**self.base, "object": "text_completion", **usage_field,
                                "choices": [{"index": 0, "text": text, "logprobs": None,
                                             "finish_reason": delta.finish_reason}]}))  # fmt: skip
            if delta.finish_reason is not None and self.include_usage and delta.usage is not None:
                out.append(sse({**self.base, "object": "text_completion", "choices": [],
                                "usage": usage_body(delta.usage)}))  # fmt: skip
            return out

        return self.dialect.relay(stream, frame)


class OpenAIDialect(Dialect):
    """``{"error": {"message", "type", "param", "code"}}``, streams as SSE ``data:`` events."""

    name = "openai"
    framing = SSE
    stream_headers: ClassVar[dict[str, str]] = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    }
    server_timing = True

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

    def parse_chat(self, fields: Fields) -> ParsedChat:
        return openai_parse.parse_chat(fields)

    def chat_answer(self, parsed: ParsedChat) -> ChatAnswer:
        return ChatAnswer(self, parsed.request.model, parsed.include_usage)

    def parse_completion(self, fields: Fields) -> ParsedCompletion:
        """A completion or FIM body (see :func:`.openai_parse.parse_completion`)."""
        return openai_parse.parse_completion(fields)

    def completion_answer(self, parsed: ParsedCompletion) -> CompletionAnswer:
        """The answer to a ``/v1/completions`` body."""
        return CompletionAnswer(self, parsed)

    def fim_answer(self, parsed: ParsedCompletion) -> FimAnswer:
        """The answer to a ``/v1/fim/completions`` body."""
        return FimAnswer(self, parsed.request.model, parsed.include_usage)

    def parse_embeddings(
        self, fields: Fields
    ) -> tuple[EmbeddingRequest, str, list[list[int]] | None]:
        """An embeddings body, its ``encoding_format``, and its token ids (if it sent ids)."""
        return openai_parse.parse_embeddings(fields)

    def embeddings_body(
        self, request: EmbeddingRequest, result: EmbeddingResult, encoding: str
    ) -> object:
        """The ``list`` of ``embedding`` objects, as floats or packed little-endian float32."""
        data = []
        for index, vector in enumerate(result.vectors):
            value: object = list(vector)
            if encoding == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        return {
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }

    def model(self, info: ModelInfo) -> dict[str, object]:
        """A ``model`` object, with what OpenAI's leaves out: the real context length and
        the capabilities (Ollama's names: ``completion``, ``insert``, ``tools``…)."""
        return {
            "id": info.name,
            "object": "model",
            "created": info.modified_ms // 1000,
            "owned_by": "edgecoder",
            "context_length": info.context_length,
            "capabilities": info.capabilities,
        }

    def models(self, models: list[ModelInfo]) -> object:
        """The ``list`` of models."""
        return {"object": "list", "data": [self.model(m) for m in models]}


OPENAI = OpenAIDialect()
