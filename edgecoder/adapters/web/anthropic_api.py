"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

What Claude Code (``ANTHROPIC_BASE_URL=http://node:4304``) and Anthropic's SDKs call. The
chat route is the one chat handler (:mod:`edgecoder.adapters.web.chat_api`) over the
Anthropic dialect (:mod:`edgecoder.adapters.web.anthropic_dialect`); ``anthropic-version``
and ``anthropic-beta`` headers are accepted whatever their value.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.web.chat_api import chat_handler
from edgecoder.adapters.web.dialects import ANTHROPIC
from edgecoder.adapters.web.requests import read_json
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.services import Services

__all__ = ("anthropic_routes",)


def anthropic_routes(services: Services, route: RouteMaker) -> list[Route]:
    """The Messages API routes over ``services``."""
    limit = services.config.api.max_body_bytes

    async def count_tokens(request: Request) -> Response:
        chat = ANTHROPIC.parse_count_tokens(await read_json(request, limit))
        tokens = await services.count_tokens(chat)
        return JSONResponse(
            ANTHROPIC.token_count(tokens), headers={"X-EdgeCoder-Node": services.served_by()}
        )

    return [
        route("/v1/messages", chat_handler(services, ANTHROPIC), ANTHROPIC, ["POST"]),
        route("/v1/messages/count_tokens", count_tokens, ANTHROPIC, ["POST"]),
    ]
