"""OpenAI's Responses API, ``POST /v1/responses``: the one chat handler in its dialect.

What the dialect reads and answers is in :mod:`edgecoder.adapters.web.responses_parse`
and :mod:`edgecoder.adapters.web.responses_dialect`; the handler is the one every chat
route shares (:mod:`edgecoder.adapters.web.chat_api`).
"""

from __future__ import annotations

from starlette.routing import Route

from edgecoder.adapters.web.chat_api import chat_handler
from edgecoder.adapters.web.dialects import RESPONSES
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.services import Services

__all__ = ("responses_routes",)


def responses_routes(services: Services, route: RouteMaker) -> list[Route]:
    """The ``/v1/responses`` route over ``services``."""
    return [route("/v1/responses", chat_handler(services, RESPONSES), RESPONSES, ["POST"])]
