"""llama.cpp server's fill-in-the-middle route, ``POST /infill``, for its editor plugins.

Body: ``input_prefix``, ``input_suffix``, optional ``prompt`` (text typed after the
prefix), ``n_predict``, ``temperature``, ``top_p``, ``seed``, ``stop``, ``stream``,
``model`` (default: ``inference.model``, else the first model). Answers llama.cpp's shape:
``{"content", "stop", "model", "tokens_predicted", "tokens_evaluated", "stop_type"}``,
streamed as SSE ``data:`` events of the same objects.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edgecoder.adapters.web.dialects import OPENAI
from edgecoder.adapters.web.generation import admit, capped, collect
from edgecoder.adapters.web.requests import Fields, read_json
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.adapters.web.streams import heartbeat, sse
from edgecoder.errors import EdgeCoderError
from edgecoder.inference.types import CompletionRequest, Delta, SamplingParams
from edgecoder.services import Services

__all__ = ("infill_routes",)


def _request(fields: Fields, model: str) -> CompletionRequest:
    limit = fields.integer("n_predict")
    return CompletionRequest(
        model=model,
        prompt=(fields.text("input_prefix", "") or "") + (fields.text("prompt", "") or ""),
        suffix=fields.text("input_suffix", "") or "",
        sampling=SamplingParams(
            max_tokens=limit if limit is not None and limit > 0 else None,
            temperature=fields.number("temperature", 0.0, 2.0),
            top_p=fields.number("top_p", 0.0, 1.0),
            stop=fields.stops("stop"),
            seed=fields.integer("seed"),
        ),
    )


def _final(model: str, finish: str, prompt_tokens: int, output_tokens: int) -> dict[str, object]:
    return {
        "content": "", "stop": True, "model": model, "tokens_predicted": output_tokens,
        "tokens_evaluated": prompt_tokens, "stop_type": "limit" if finish == "length" else "eos",
    }  # fmt: skip


def infill_routes(services: Services, route: RouteMaker) -> list[Route]:
    """The ``/infill`` route over ``services``."""
    limit = services.config.api.max_body_bytes
    keepalive = float(services.config.api.keepalive_s)

    async def infill(request: Request) -> Response:
        fields = await read_json(request, limit)
        model = fields.text("model") or await services.default_model()
        cap = services.config.inference.default_max_tokens
        asked = capped(_request(fields, model), cap)
        stream = await admit(services.complete(asked, request.state.principal.name))
        headers = {"X-EdgeCoder-Node": services.served_by(stream)}
        if fields.flag("stream"):
            return StreamingResponse(
                heartbeat(_frames(stream, model), keepalive),
                media_type="text/event-stream",
                headers=headers,
            )
        done = await collect(request, stream)
        if done is None:
            return Response(status_code=499)
        body = _final(model, done.finish_reason, done.usage.prompt_tokens,
                      done.usage.completion_tokens)  # fmt: skip
        body["content"] = done.text
        return JSONResponse(body, headers=headers)

    return [route("/infill", infill, OPENAI, ["POST"])]


async def _frames(stream: AsyncIterator[Delta], model: str) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        try:
            async for delta in stream:
                if delta.text:
                    yield sse({"content": delta.text, "stop": False})
                if delta.finish_reason is not None:
                    usage = delta.usage
                    yield sse(_final(model, delta.finish_reason,
                                     usage.prompt_tokens if usage else 0,
                                     usage.completion_tokens if usage else 0))  # fmt: skip
        except EdgeCoderError as exc:
            yield sse({"error": {"message": str(exc)}, "stop": True})
