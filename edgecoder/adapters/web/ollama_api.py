"""Ollama-compatible routes under ``/api``: version, tags, show, ps, chat, generate, embed.

Every shape is the Ollama dialect's (:mod:`edgecoder.adapters.web.ollama_dialect`);
these handlers read the body, run the generation and choose a whole or streamed answer.
Ollama streams unless asked not to.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.web.chat_api import chat_handler
from edgecoder.adapters.web.dialects import OLLAMA
from edgecoder.adapters.web.generation import admit, capped, collect, unless_disconnected
from edgecoder.adapters.web.ollama_dialect import OLLAMA_COMPAT_VERSION
from edgecoder.adapters.web.requests import read_json
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.services import Services

__all__ = ("OLLAMA_COMPAT_VERSION", "ollama_routes")


def ollama_routes(services: Services, route: RouteMaker) -> list[Route]:
    """The ``/api`` routes over ``services``."""
    limit = services.config.api.max_body_bytes

    def headers(stream: object = None) -> dict[str, str]:
        return {"X-EdgeCoder-Node": services.served_by(stream)}

    async def version(request: Request) -> Response:
        return JSONResponse(OLLAMA.version(), headers=headers())

    async def tags(request: Request) -> Response:
        return JSONResponse(OLLAMA.tags(await services.list_models()), headers=headers())

    async def show(request: Request) -> Response:
        name = OLLAMA.parse_model(await read_json(request, limit))
        info = await services.show_model(name)
        return JSONResponse(OLLAMA.shown(info, services.node_id), headers=headers())

    async def ps(request: Request) -> Response:
        return JSONResponse(OLLAMA.running(await services.loaded_models()), headers=headers())

    async def generate(request: Request) -> Response:
        parsed = OLLAMA.parse_generate(await read_json(request, limit))
        answer = OLLAMA.generate_answer(parsed)
        if parsed.load_only:
            await services.show_model(parsed.model)
            return JSONResponse(OLLAMA.loaded(parsed.model), headers=headers())
        cap, account = services.config.inference.default_max_tokens, request.state.principal.name
        source = (
            services.chat(capped(parsed.chat, cap), account) if parsed.chat is not None
            else services.complete(capped(parsed.completion, cap), account)  # type: ignore[type-var, arg-type]
        )  # fmt: skip
        stream = await admit(source)
        if parsed.stream:
            return OLLAMA.streaming(answer.frames(stream), headers(stream), 0.0)
        done = await collect(request, stream)
        if done is None:
            return Response(status_code=499)
        return JSONResponse(answer.body(done), headers=headers(stream))

    async def embed(request: Request) -> Response:
        embed_request = OLLAMA.parse_embed(await read_json(request, limit))
        started = time.monotonic_ns()
        result = await unless_disconnected(request, services.embed(embed_request))
        if result is None:
            return Response(status_code=499)
        body = OLLAMA.embed_body(embed_request, result, started)
        return JSONResponse(body, headers=headers())

    async def embeddings(request: Request) -> Response:
        # The older route: one text as ``prompt``, one vector back.
        embed_request = OLLAMA.parse_embed(await read_json(request, limit))
        result = await unless_disconnected(request, services.embed(embed_request))
        if result is None:
            return Response(status_code=499)
        return JSONResponse(OLLAMA.legacy_embedding_body(result), headers=headers())

    return [
        route("/api/version", version, OLLAMA, ["GET"]),
        route("/api/tags", tags, OLLAMA, ["GET"]),
        route("/api/show", show, OLLAMA, ["POST"]),
        route("/api/ps", ps, OLLAMA, ["GET"]),
        route("/api/chat", chat_handler(services, OLLAMA), OLLAMA, ["POST"]),
        route("/api/generate", generate, OLLAMA, ["POST"]),
        route("/api/embed", embed, OLLAMA, ["POST"]),
        route("/api/embeddings", embeddings, OLLAMA, ["POST"]),
    ]
