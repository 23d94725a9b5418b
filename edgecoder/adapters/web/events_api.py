"""``GET /admin/events``: the node's event hub as Server-Sent Events, for an admin key.

Each event is one SSE ``data:`` message carrying the event's JSON (``{"kind", ...}``, see
:mod:`edgecoder.events`), from the moment the request is answered; nothing is replayed.
``?kinds=task.started,task.finished`` keeps only those kinds (an unknown kind is ``400``).
A reader more than ``maxsize`` events behind loses the oldest and reads
``{"kind": "missed", "count": N}`` in their place. A ``: keep-alive`` comment goes out
after every ``api.keepalive_s`` of silence; the stream ends when the client goes away
(its subscription with it) or the node stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from edgecoder.adapters.web.admin_api import require_admin
from edgecoder.adapters.web.dialects import OPENAI
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.adapters.web.streams import heartbeat, sse
from edgecoder.errors import BadRequestError
from edgecoder.events import DEFAULT_STREAM_SIZE, KINDS, EventStream
from edgecoder.services import Services

__all__ = ("events_routes", "parse_kinds")


def parse_kinds(text: str | None) -> frozenset[str] | None:
    """The kinds named in ``?kinds=a,b`` (None: every kind).

    :raises BadRequestError: a kind that is not published.
    """
    if text is None:
        return None
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = kinds - KINDS
    if unknown:
        raise BadRequestError(
            f"unknown event kind(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(KINDS))}",
            "kinds",
        )
    return kinds or None


async def _frames(stream: EventStream) -> AsyncIterator[bytes]:
    try:
        async for event in stream:
            yield sse(event.as_json())
    finally:
        stream.close()


class _EventResponse(StreamingResponse):
    """Closes its stream however the response ends, even if its body never started."""

    def __init__(self, stream: EventStream, keepalive_s: float) -> None:
        super().__init__(
            heartbeat(_frames(stream), keepalive_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.close()


def events_routes(
    services: Services, route: RouteMaker, maxsize: int = DEFAULT_STREAM_SIZE
) -> list[Route]:
    """``GET /admin/events`` over ``services.events``; each reader holds at most
    ``maxsize`` unread events."""

    async def events(request: Request) -> Response:
        require_admin(request)
        kinds = parse_kinds(request.query_params.get("kinds"))
        # Subscribed before the headers go out: whatever follows the answer is in it.
        stream = services.events.stream(kinds, maxsize)
        return _EventResponse(stream, float(services.config.api.keepalive_s))

    return [route("/admin/events", events, OPENAI, ["GET"])]
