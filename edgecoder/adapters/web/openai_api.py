"""OpenAI-compatible routes: models, chat completions, completions, FIM, embeddings.

Every shape is the OpenAI dialect's (:mod:`edgecoder.adapters.web.openai_dialect`);
these handlers read the body, run the generation and choose a whole or streamed answer.
Keep-alive comments fill long silences in streams (prompt reading, queueing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.web.chat_api import chat_handler
from edgecoder.adapters.web.dialects import OPENAI
from edgecoder.adapters.web.generation import (
    admit,
    capped,
    collect,
    server_timing,
    unless_disconnected,
)
from edgecoder.adapters.web.requests import read_json
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.adapters.web.token_ids import decode_token_ids
from edgecoder.inference.served import ServedStream
from edgecoder.inference.types import CompletionRequest
from edgecoder.services import Services

__all__ = ("openai_routes",)


def openai_routes(services: Services, route: RouteMaker) -> list[Route]:
    """The ``/v1`` routes over ``services``."""
    limit = services.config.api.max_body_bytes
    keepalive = float(services.config.api.keepalive_s)

    def headers(stream: object = None) -> dict[str, str]:
        return {"X-EdgeCoder-Node": services.served_by(stream)}

    async def list_models(request: Request) -> Response:
        return JSONResponse(OPENAI.models(await services.list_models()), headers=headers())

    async def get_model(request: Request) -> Response:
        info = await services.show_model(request.path_params["model"])
        return JSONResponse(OPENAI.model(info), headers=headers())

    def complete(request: Request, asked: CompletionRequest) -> ServedStream:
        capped_request = capped(asked, services.config.inference.default_max_tokens)
        return services.complete(capped_request, request.state.principal.name)

    async def completions(request: Request) -> Response:
        parsed = OPENAI.parse_completion(await read_json(request, limit))
        backend_start = time.perf_counter()
        stream = await admit(complete(request, parsed.request))
        answer = OPENAI.completion_answer(parsed)
        if parsed.stream:
            return OPENAI.streaming(answer.frames(stream), headers(stream), keepalive)
        done = await collect(request, stream)
        backend_s = time.perf_counter() - backend_start
        if done is None:
            return Response(status_code=499)
        response = JSONResponse(answer.body(done), headers=headers(stream))
        response.headers["Server-Timing"] = server_timing(request, backend_s)
        return response

    async def fim_completions(request: Request) -> Response:
        # Continue's FIM endpoint: a completion body, answered as chat completion chunks.
        parsed = OPENAI.parse_completion(await read_json(request, limit))
        stream = await admit(complete(request, parsed.request))
        answer = OPENAI.fim_answer(parsed)
        if parsed.stream:
            return OPENAI.streaming(answer.frames(stream), headers(stream), keepalive)
        done = await collect(request, stream)
        if done is None:
            return Response(status_code=499)
        return JSONResponse(answer.body(done), headers=headers(stream))

    async def embeddings(request: Request) -> Response:
        embed_request, encoding, ids = OPENAI.parse_embeddings(await read_json(request, limit))
        if ids is not None:
            texts = await asyncio.to_thread(decode_token_ids, ids)
            embed_request = dataclasses.replace(embed_request, inputs=texts)
        result = await unless_disconnected(request, services.embed(embed_request))
        if result is None:
            return Response(status_code=499)
        body = OPENAI.embeddings_body(embed_request, result, encoding)
        return JSONResponse(body, headers=headers())

    return [
        route("/v1/models", list_models, OPENAI, ["GET"]),
        route("/v1/models/{model:path}", get_model, OPENAI, ["GET"]),
        route("/v1/chat/completions", chat_handler(services, OPENAI), OPENAI, ["POST"]),
        route("/v1/completions", completions, OPENAI, ["POST"]),
        route("/v1/fim/completions", fim_completions, OPENAI, ["POST"]),
        # Continue resolves "fim/completions" against apiBase as a URL: with
        # http://node:4304/v1 (no trailing slash, as users type it) that is this path.
        route("/fim/completions", fim_completions, OPENAI, ["POST"]),
        route("/v1/embeddings", embeddings, OPENAI, ["POST"]),
    ]
