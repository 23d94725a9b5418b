"""Ollama's dialect: its error shape, its NDJSON framing, and the shape of every answer.

Streams are NDJSON, one JSON object per line, the last with ``"done": true``, counts and
durations in nanoseconds, as Ollama writes them. Tool-call arguments are JSON objects
(VS Code Copilot drops string arguments). Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from edgecoder.adapters.web import ollama_parse
from edgecoder.adapters.web.dialect import Dialect
from edgecoder.adapters.web.generation import Collected
from edgecoder.adapters.web.ollama_parse import OllamaGenerate
from edgecoder.adapters.web.parsed import ParsedChat
from edgecoder.adapters.web.requests import Fields
from edgecoder.adapters.web.streams import NDJSON, ndjson
from edgecoder.errors import EdgeCoderError
from edgecoder.inference.types import (
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    ToolCall,
    Usage,
)

__all__ = ("OLLAMA", "OLLAMA_COMPAT_VERSION", "OllamaAnswer", "OllamaDialect")

OLLAMA_COMPAT_VERSION = "0.9.0"
"""The Ollama API version this node speaks; VS Code Copilot needs at least 0.6.4."""


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _details(info: ModelInfo) -> dict[str, object]:
    return {
        "parent_model": "",
        "format": info.format,
        "family": info.family,
        "families": [info.family] if info.family else [],
        "parameter_size": info.parameter_size,
        "quantization_level": info.quantization,
    }


def _tool_calls(calls: tuple[ToolCall, ...], first: int = 0) -> list[dict[str, object]]:
    """Calls as Ollama writes them: arguments as an object, ``index`` in the answer."""
    out: list[dict[str, object]] = []
    for i, call in enumerate(calls, start=first):
        try:
            arguments = json.loads(call.arguments) if call.arguments else {}
        except ValueError:
            arguments = {}
        out.append({"function": {"index": i, "name": call.name, "arguments": arguments}})
    return out


def _done_reason(finish: str) -> str:
    """Ollama says ``stop`` when a turn ends in tool calls."""
    return "stop" if finish == "tool_calls" else finish


class OllamaAnswer:
    """An ``/api/chat`` answer (``key="message"``) or an ``/api/generate`` one (``"response"``).

    Its clock starts when it is made, before admission, so ``total_duration`` counts the
    wait for a slot as Ollama's does.
    """

    def __init__(self, dialect: Dialect, model: str, key: str) -> None:
        self.dialect = dialect
        self.model = model
        self.key = key
        self.started_ns = time.monotonic_ns()

    def _piece(self, text: str, calls: tuple[ToolCall, ...] = (), first: int = 0) -> object:
        if self.key == "response":
            return text
        message: dict[str, object] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = _tool_calls(calls, first)
        return message

    def _final(self, reason: str, prompt_tokens: int, output_tokens: int) -> dict[str, object]:
        elapsed = time.monotonic_ns() - self.started_ns
        return {
            "done": True,
            "done_reason": _done_reason(reason),
            "total_duration": elapsed,
            "load_duration": 0,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 0,
            "eval_count": output_tokens,
            "eval_duration": elapsed,
        }

    def body(self, done: Collected) -> object:
        """The one object of an unstreamed answer, ``"done": true``."""
        return {"model": self.model, "created_at": _now(),
                self.key: self._piece(done.text, done.tool_calls),
                **self._final(done.finish_reason, done.usage.prompt_tokens,
                              done.usage.completion_tokens)}  # fmt: skip

    def frames(self, stream: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
        """A line per delta with text or tool calls, and a last ``"done": true`` line."""

        calls_sent = 0

        def frame(delta: Delta) -> list[bytes]:
            nonlocal calls_sent
            out = []
            if delta.text or delta.tool_calls:
                piece = self._piece(delta.text, delta.tool_calls, calls_sent)
                calls_sent += len(delta.tool_calls)
                out.append(ndjson({"model": self.model, "created_at": _now(), self.key: piece,
                                   "done": False}))  # fmt: skip
            if delta.finish_reason is not None:
                usage = delta.usage or Usage(0, 0)
                final = self._final(delta.finish_reason, usage.prompt_tokens,
                                    usage.completion_tokens)  # fmt: skip
                out.append(ndjson({"model": self.model, "created_at": _now(),
                                   self.key: self._piece(""), **final}))  # fmt: skip
            return out

        return self.dialect.relay(stream, frame)


class OllamaDialect(Dialect):
    """``{"error": "message"}``, streams as NDJSON lines."""

    name = "ollama"
    framing = NDJSON

    def error_body(self, exc: EdgeCoderError) -> object:
        return {"error": str(exc)}

    def internal_error(self, message: str) -> object:
        return {"error": message}

    def stream_error(self, exc: EdgeCoderError) -> bytes:
        return json.dumps(self.error_body(exc)).encode() + b"\n"

    def parse_chat(self, fields: Fields) -> ParsedChat:
        return ollama_parse.parse_chat(fields)

    def chat_answer(self, parsed: ParsedChat) -> OllamaAnswer:
        return OllamaAnswer(self, parsed.request.model, "message")

    def parse_generate(self, fields: Fields) -> OllamaGenerate:
        """An ``/api/generate`` body (see :func:`.ollama_parse.parse_generate`)."""
        return ollama_parse.parse_generate(fields)

    def generate_answer(self, parsed: OllamaGenerate) -> OllamaAnswer:
        """The answer to an ``/api/generate`` body, begun now."""
        return OllamaAnswer(self, parsed.model, "response")

    def loaded(self, model: str) -> object:
        """The answer to an ``/api/generate`` with no prompt: the model is loaded."""
        return {"model": model, "created_at": _now(), "response": "", "done": True,
                "done_reason": "load"}  # fmt: skip

    def parse_embed(self, fields: Fields) -> EmbeddingRequest:
        """An ``/api/embed`` or legacy ``/api/embeddings`` body."""
        return ollama_parse.parse_embed(fields)

    def embed_body(
        self, request: EmbeddingRequest, result: EmbeddingResult, started_ns: int
    ) -> object:
        """``/api/embed``'s answer: every vector, with the time since ``started_ns``."""
        return {
            "model": request.model,
            "embeddings": [list(v) for v in result.vectors],
            "total_duration": time.monotonic_ns() - started_ns,
            "load_duration": 0,
            "prompt_eval_count": result.prompt_tokens,
        }

    def legacy_embedding_body(self, result: EmbeddingResult) -> object:
        """``/api/embeddings``'s answer: the first vector only."""
        return {"embedding": list(result.vectors[0])}

    def parse_model(self, fields: Fields) -> str:
        """The model a body names (``model``, or the older ``name``)."""
        return ollama_parse.model_name(fields)

    def version(self) -> object:
        """``/api/version``'s answer."""
        return {"version": OLLAMA_COMPAT_VERSION}

    def tag(self, info: ModelInfo) -> dict[str, object]:
        """One model as ``/api/tags`` lists it."""
        return {
            "name": info.name,
            "model": info.name,
            "modified_at": _stamp(info.modified_ms),
            "size": info.size_bytes,
            "digest": info.digest,
            "details": _details(info),
        }

    def tags(self, models: list[ModelInfo]) -> object:
        """``/api/tags``'s answer."""
        return {"models": [self.tag(m) for m in models]}

    def running(self, loaded: list[ModelInfo]) -> object:
        """``/api/ps``'s answer: the models in memory."""
        models = [
            {**self.tag(m), "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0,
             "context_length": m.context_length}
            for m in loaded
        ]  # fmt: skip
        return {"models": models}

    def shown(self, info: ModelInfo, node_id: str) -> object:
        """``/api/show``'s answer: a model's details, context length and capabilities."""
        return {
            "license": "",
            "modelfile": f"# served by EdgeCoder node {node_id}\nFROM {info.name}\n",
            "parameters": "",
            "template": "",
            "details": _details(info),
            "model_info": {
                "general.architecture": info.family,
                "general.parameter_count": info.parameter_count,
                f"{info.family}.context_length": info.context_length,
            },
            "capabilities": info.capabilities,
            "modified_at": _stamp(info.modified_ms),
        }


OLLAMA = OllamaDialect()
