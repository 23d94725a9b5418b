"""OpenAI-compatible routes: models, chat completions, completions, FIM, embeddings.

Responses and stream chunks are shaped exactly as OpenAI's: SSE ``data:`` events, the
first chat delta carrying ``role``, a final chunk with ``finish_reason``, an optional
usage chunk with ``choices: []`` (``stream_options.include_usage``), then
``data: [DONE]``. Keep-alive comments fill long silences (prompt reading, queueing).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import struct
import time
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edgecoder import __version__
from edgecoder.adapters.web.dialects import OPENAI
from edgecoder.adapters.web.generation import admit, collect, server_timing, unless_disconnected
from edgecoder.adapters.web.openai_parse import parse_chat, parse_completion, parse_embeddings
from edgecoder.adapters.web.requests import read_json
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.adapters.web.streams import SSE_DONE, heartbeat, sse
from edgecoder.errors import EdgeCoderError
from edgecoder.inference.types import Delta, ModelInfo, Usage
from edgecoder.services import Services

__all__ = ("openai_routes",)

_FINGERPRINT = f"edgecoder-{__version__}"


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _model(info: ModelInfo) -> dict[str, object]:
    return {
        "id": info.name,
        "object": "model",
        "created": info.modified_ms // 1000,
        "owned_by": "edgecoder",
        "context_length": info.context_length,
    }


def openai_routes(services: Services, route: RouteMaker) -> list[Route]:
    """The ``/v1`` routes over ``services``."""
    limit = services.config.api.max_body_bytes
    keepalive = float(services.config.api.keepalive_s)

    def headers(stream: object = None) -> dict[str, str]:
        return {"X-EdgeCoder-Node": services.served_by(stream)}

    async def list_models(request: Request) -> Response:
        models = await services.list_models()
        body = {"object": "list", "data": [_model(m) for m in models]}
        return JSONResponse(body, headers=headers())

    async def get_model(request: Request) -> Response:
        info = await services.show_model(request.path_params["model"])
        return JSONResponse(_model(info), headers=headers())

    def streaming(chunks: AsyncIterator[bytes], stream: object) -> StreamingResponse:
        return StreamingResponse(
            heartbeat(chunks, keepalive),
            media_type="text/event-stream",
            headers={**headers(stream), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def chat_completions(request: Request) -> Response:
        parsed = parse_chat(await read_json(request, limit))
        backend_start = time.perf_counter()
        stream = await admit(services.chat(parsed.request))
        ident, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        base = {"id": ident, "created": created, "model": parsed.request.model,
                "system_fingerprint": _FINGERPRINT}  # fmt: skip
        if not parsed.stream:
            done = await collect(request, stream)
            backend_s = time.perf_counter() - backend_start
            if done is None:
                return Response(status_code=499)
            message: dict[str, object] = {
                "role": "assistant",
                "content": done.text,
                "refusal": None,
            }
            if done.tool_calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": c.arguments}}
                    for c in done.tool_calls
                ]  # fmt: skip
            body = {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": done.finish_reason}],
                "usage": _usage(done.usage),
            }  # fmt: skip
            response = JSONResponse(body, headers=headers(stream))
            response.headers["Server-Timing"] = server_timing(request, backend_s)
            return response
        return streaming(_chat_chunks(stream, base, parsed.include_usage), stream)

    async def completions(request: Request) -> Response:
        parsed = parse_completion(await read_json(request, limit))
        backend_start = time.perf_counter()
        stream = await admit(services.complete(parsed.request))
        base = {"id": f"cmpl-{secrets.token_hex(12)}", "created": int(time.time()),
                "model": parsed.request.model, "system_fingerprint": _FINGERPRINT}  # fmt: skip
        prefix = parsed.request.prompt if parsed.echo else ""
        if not parsed.stream:
            done = await collect(request, stream)
            backend_s = time.perf_counter() - backend_start
            if done is None:
                return Response(status_code=499)
            body = {
                **base,
                "object": "text_completion",
                "choices": [{"index": 0, "text": prefix + done.text, "logprobs": None,
                             "finish_reason": done.finish_reason}],
                "usage": _usage(done.usage),
            }  # fmt: skip
            response = JSONResponse(body, headers=headers(stream))
            response.headers["Server-Timing"] = server_timing(request, backend_s)
            return response
        return streaming(_completion_chunks(stream, base, parsed.include_usage, prefix), stream)

    async def fim_completions(request: Request) -> Response:
        # Continue's FIM endpoint: a completion body, answered as chat completion chunks.
        parsed = parse_completion(await read_json(request, limit))
        stream = await admit(services.complete(parsed.request))
        base = {"id": f"fim-{secrets.token_hex(12)}", "created": int(time.time()),
                "model": parsed.request.model, "system_fingerprint": _FINGERPRINT}  # fmt: skip
        if not parsed.stream:
            done = await collect(request, stream)
            if done is None:
                return Response(status_code=499)
            body = {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "logprobs": None, "finish_reason": done.finish_reason,
                             "message": {"role": "assistant", "content": done.text}}],
                "usage": _usage(done.usage),
            }  # fmt: skip
            return JSONResponse(body, headers=headers(stream))
        return streaming(_chat_chunks(stream, base, parsed.include_usage), stream)

    async def embeddings(request: Request) -> Response:
        embed_request, encoding = parse_embeddings(await read_json(request, limit))
        result = await unless_disconnected(request, services.embed(embed_request))
        if result is None:
            return Response(status_code=499)
        data = []
        for index, vector in enumerate(result.vectors):
            value: object = list(vector)
            if encoding == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        body = {
            "object": "list",
            "data": data,
            "model": embed_request.model,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }
        return JSONResponse(body, headers=headers())

    return [
        route("/v1/models", list_models, OPENAI, ["GET"]),
        route("/v1/models/{model:path}", get_model, OPENAI, ["GET"]),
        route("/v1/chat/completions", chat_completions, OPENAI, ["POST"]),
        route("/v1/completions", completions, OPENAI, ["POST"]),
        route("/v1/fim/completions", fim_completions, OPENAI, ["POST"]),
        route("/v1/embeddings", embeddings, OPENAI, ["POST"]),
    ]


async def _relay(
    stream: AsyncIterator[Delta], make: Callable[[Delta], list[bytes]]
) -> AsyncIterator[bytes]:
    """Frame each delta; an error after the stream began becomes a final error event."""
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        try:
            async for delta in stream:
                for chunk in make(delta):
                    yield chunk
        except EdgeCoderError as exc:
            yield OPENAI.stream_error(exc)
    yield SSE_DONE


def _chat_chunks(
    stream: AsyncIterator[Delta], base: dict[str, object], include_usage: bool
) -> AsyncIterator[bytes]:
    usage_field: dict[str, object] = {"usage": None} if include_usage else {}
    first = True

    def make(delta: Delta) -> list[bytes]:
        nonlocal first
        out: list[bytes] = []
        body: dict[str, object] = {}
        if first:
            body["role"] = "assistant"
            body["content"] = ""
            first = False
        if delta.text:
            body["content"] = delta.text
        if delta.tool_calls:
            body["tool_calls"] = [
                {"index": i, "id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for i, c in enumerate(delta.tool_calls)
            ]  # fmt: skip
        if body:
            out.append(sse({**base, "object": "chat.completion.chunk", **usage_field,
                            "choices": [{"index": 0, "delta": body, "logprobs": None,
                                         "finish_reason": None}]}))  # fmt: skip
        if delta.finish_reason is not None:
            out.append(sse({**base, "object": "chat.completion.chunk", **usage_field,
                            "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                         "finish_reason": delta.finish_reason}]}))  # fmt: skip
            if include_usage and delta.usage is not None:
                out.append(sse({**base, "object": "chat.completion.chunk", "choices": [],
                                "usage": _usage(delta.usage)}))  # fmt: skip
        return out

    # The admission marker was consumed: open with the role chunk right away.
    async def frames() -> AsyncIterator[bytes]:
        for chunk in make(Delta()):
            yield chunk
        async for chunk in _relay(stream, make):
            yield chunk

    return frames()


def _completion_chunks(
    stream: AsyncIterator[Delta], base: dict[str, object], include_usage: bool, prefix: str
) -> AsyncIterator[bytes]:
    usage_field: dict[str, object] = {"usage": None} if include_usage else {}
    pending_prefix = prefix

    def make(delta: Delta) -> list[bytes]:
        nonlocal pending_prefix
        out: list[bytes] = []
        text = pending_prefix + delta.text
        pending_prefix = ""
        if text or delta.finish_reason is not None:
            out.append(sse({**base, "object": "text_completion", **usage_field,
                            "choices": [{"index": 0, "text": text, "logprobs": None,
                                         "finish_reason": delta.finish_reason}]}))  # fmt: skip
        if delta.finish_reason is not None and include_usage and delta.usage is not None:
            out.append(sse({**base, "object": "text_completion", "choices": [],
                            "usage": _usage(delta.usage)}))  # fmt: skip
        return out

    return _relay(stream, make)
