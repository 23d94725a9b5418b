"""Ollama-compatible routes under ``/api``: version, tags, show, ps, chat, generate, embed.

Streams are NDJSON, one JSON object per line, the last with ``"done": true``, counts and
durations in nanoseconds, as Ollama writes them. Tool-call arguments are JSON objects
(VS Code Copilot drops string arguments). Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edgecoder.adapters.web.dialects import OLLAMA
from edgecoder.adapters.web.generation import admit, collect, unless_disconnected
from edgecoder.adapters.web.ollama_parse import parse_chat, parse_embed, parse_generate
from edgecoder.adapters.web.requests import read_json
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.adapters.web.streams import ndjson
from edgecoder.errors import EdgeCoderError
from edgecoder.inference.types import Delta, ModelInfo, ToolCall
from edgecoder.services import Services

__all__ = ("OLLAMA_COMPAT_VERSION", "ollama_routes")

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


def _tag(info: ModelInfo) -> dict[str, object]:
    return {
        "name": info.name,
        "model": info.name,
        "modified_at": _stamp(info.modified_ms),
        "size": info.size_bytes,
        "digest": info.digest,
        "details": _details(info),
    }


def _capabilities(info: ModelInfo) -> list[str]:
    caps = ["completion"]
    if info.supports_fim:
        caps.append("insert")
    if info.supports_tools:
        caps.append("tools")
    if info.supports_embeddings:
        caps.append("embedding")
    return caps


def _tool_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for call in calls:
        try:
            arguments = json.loads(call.arguments) if call.arguments else {}
        except ValueError:
            arguments = {}
        out.append({"function": {"name": call.name, "arguments": arguments}})
    return out


def ollama_routes(services: Services, route: RouteMaker) -> list[Route]:
    """The ``/api`` routes over ``services``."""
    limit = services.config.api.max_body_bytes

    def headers(stream: object = None) -> dict[str, str]:
        return {"X-EdgeCoder-Node": services.served_by(stream)}

    async def version(request: Request) -> Response:
        return JSONResponse({"version": OLLAMA_COMPAT_VERSION}, headers=headers())

    async def tags(request: Request) -> Response:
        models = await services.list_models()
        return JSONResponse({"models": [_tag(m) for m in models]}, headers=headers())

    async def show(request: Request) -> Response:
        fields = await read_json(request, limit)
        name = fields.text("model") or fields.text("name", required=True) or ""
        info = await services.show_model(name)
        body = {
            "license": "",
            "modelfile": f"# served by EdgeCoder node {services.node_id}\nFROM {info.name}\n",
            "parameters": "",
            "template": "",
            "details": _details(info),
            "model_info": {
                "general.architecture": info.family,
                "general.parameter_count": 0,
                f"{info.family}.context_length": info.context_length,
            },
            "capabilities": _capabilities(info),
            "modified_at": _stamp(info.modified_ms),
        }
        return JSONResponse(body, headers=headers())

    async def ps(request: Request) -> Response:
        loaded = await services.loaded_models()
        models = [
            {**_tag(m), "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0,
             "context_length": m.context_length}
            for m in loaded
        ]  # fmt: skip
        return JSONResponse({"models": models}, headers=headers())

    def streaming(
        model: str, stream: AsyncIterator[Delta], key: str, started_ns: int
    ) -> StreamingResponse:
        return StreamingResponse(
            _ndjson(stream, model, key, started_ns),
            media_type="application/x-ndjson",
            headers=headers(stream),
        )

    async def chat(request: Request) -> Response:
        chat_request, streamed = parse_chat(await read_json(request, limit))
        started = time.monotonic_ns()
        stream = await admit(services.chat(chat_request))
        if streamed:
            return streaming(chat_request.model, stream, "message", started)
        done = await collect(request, stream)
        if done is None:
            return Response(status_code=499)
        message: dict[str, object] = {"role": "assistant", "content": done.text}
        if done.tool_calls:
            message["tool_calls"] = _tool_calls(done.tool_calls)
        body = {"model": chat_request.model, "created_at": _now(), "message": message,
                **_final(done.finish_reason, done.usage.prompt_tokens,
                         done.usage.completion_tokens, started)}  # fmt: skip
        return JSONResponse(body, headers=headers(stream))

    async def generate(request: Request) -> Response:
        parsed = parse_generate(await read_json(request, limit))
        started = time.monotonic_ns()
        if parsed.load_only:
            await services.show_model(parsed.model)
            body = {"model": parsed.model, "created_at": _now(), "response": "",
                    "done": True, "done_reason": "load"}  # fmt: skip
            return JSONResponse(body, headers=headers())
        source = (
            services.chat(parsed.chat) if parsed.chat is not None
            else services.complete(parsed.completion)  # type: ignore[arg-type]
        )  # fmt: skip
        stream = await admit(source)
        if parsed.stream:
            return streaming(parsed.model, stream, "response", started)
        done = await collect(request, stream)
        if done is None:
            return Response(status_code=499)
        body = {"model": parsed.model, "created_at": _now(), "response": done.text,
                **_final(done.finish_reason, done.usage.prompt_tokens,
                         done.usage.completion_tokens, started)}  # fmt: skip
        return JSONResponse(body, headers=headers(stream))

    async def embed(request: Request) -> Response:
        fields = await read_json(request, limit)
        legacy = request.url.path.endswith("/embeddings")
        started = time.monotonic_ns()
        result = await unless_disconnected(request, services.embed(parse_embed(fields)))
        if result is None:
            return Response(status_code=499)
        if legacy:
            return JSONResponse({"embedding": list(result.vectors[0])}, headers=headers())
        body = {
            "model": fields.text("model") or fields.text("name"),
            "embeddings": [list(v) for v in result.vectors],
            "total_duration": time.monotonic_ns() - started,
            "load_duration": 0,
            "prompt_eval_count": result.prompt_tokens,
        }
        return JSONResponse(body, headers=headers())

    return [
        route("/api/version", version, OLLAMA, ["GET"]),
        route("/api/tags", tags, OLLAMA, ["GET"]),
        route("/api/show", show, OLLAMA, ["POST"]),
        route("/api/ps", ps, OLLAMA, ["GET"]),
        route("/api/chat", chat, OLLAMA, ["POST"]),
        route("/api/generate", generate, OLLAMA, ["POST"]),
        route("/api/embed", embed, OLLAMA, ["POST"]),
        route("/api/embeddings", embed, OLLAMA, ["POST"]),
    ]


def _final(
    reason: str, prompt_tokens: int, output_tokens: int, started_ns: int
) -> dict[str, object]:
    elapsed = time.monotonic_ns() - started_ns
    return {
        "done": True,
        "done_reason": reason,
        "total_duration": elapsed,
        "load_duration": 0,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 0,
        "eval_count": output_tokens,
        "eval_duration": elapsed,
    }


async def _ndjson(
    stream: AsyncIterator[Delta], model: str, key: str, started_ns: int
) -> AsyncIterator[bytes]:
    """NDJSON lines for ``/api/chat`` (``key="message"``) or ``/api/generate`` (``"response"``)."""

    def piece(text: str, calls: tuple[ToolCall, ...] = ()) -> object:
        if key == "response":
            return text
        message: dict[str, object] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = _tool_calls(calls)
        return message

    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        try:
            async for delta in stream:
                if delta.text or delta.tool_calls:
                    line = {"model": model, "created_at": _now(),
                            key: piece(delta.text, delta.tool_calls), "done": False}  # fmt: skip
                    yield ndjson(line)
                if delta.finish_reason is not None:
                    usage = delta.usage
                    yield ndjson({"model": model, "created_at": _now(), key: piece(""),
                                  **_final(delta.finish_reason,
                                           usage.prompt_tokens if usage else 0,
                                           usage.completion_tokens if usage else 0,
                                           started_ns)})  # fmt: skip
        except EdgeCoderError as exc:
            yield OLLAMA.stream_error(exc)
