"""One chat handler for every dialect: read the body, admit the generation, answer.

``/v1/chat/completions`` (OpenAI) and ``/api/chat`` (Ollama) are this handler over their
dialect; a new dialect's chat route is one more (see :mod:`edgecoder.adapters.web.dialect`).
Every refusal surfaces before the first byte, so it gets its status; after it the answer
is whole or streamed in the dialect's framing.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edgecoder.adapters.web.dialect import Dialect
from edgecoder.adapters.web.generation import admit, capped, collect, server_timing
from edgecoder.adapters.web.requests import read_json
from edgecoder.adapters.web.routing import Handler
from edgecoder.services import Services

__all__ = ("chat_handler",)


def chat_handler(services: Services, dialect: Dialect) -> Handler:
    """The chat handler over ``services``, answering in ``dialect``."""
    limit = services.config.api.max_body_bytes
    keepalive = float(services.config.api.keepalive_s)

    async def chat(request: Request) -> Response:
        parsed = dialect.parse_chat(await read_json(request, limit))
        answer = dialect.chat_answer(parsed)
        backend_start = time.perf_counter()
        cap = services.config.inference.default_max_tokens
        # The caller's key is the credit account a peer's work is charged to.
        account = request.state.principal.name
        stream = await admit(services.chat(capped(parsed.request, cap), account))
        headers = {"X-EdgeCoder-Node": services.served_by(stream)}
        if parsed.stream:
            return dialect.streaming(answer.frames(stream), headers, keepalive)
        done = await collect(request, stream)
        backend_s = time.perf_counter() - backend_start
        if done is None:
            return Response(status_code=499)
        response = JSONResponse(answer.body(done), headers=headers)
        if dialect.server_timing:
            response.headers["Server-Timing"] = server_timing(request, backend_s)
        return response

    return chat
