"""The task protocol's routes on the mesh listener (every request already signed and checked).

``POST /mesh/tasks/offer``    origin → candidate   ``{"result": "considering" | reason}``
``POST /mesh/tasks/claim``    candidate → origin   ``{"result": "granted" | "pending" | "closed"}``
``POST /mesh/tasks/close``    origin → candidate   the attempt went to another node
``POST /mesh/tasks/run``      origin → grantee     the grant; answered with sealed event lines
``POST /mesh/tasks/cancel``   origin → worker      stop working on the attempt
``POST /mesh/tasks/receipt``  origin → worker      ``{"worker_sig": hex}``
``POST /mesh/ledger/entries`` any → any            a ledger chain's entries after a place
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edgecoder.adapters.transports.statuses import refusal_status
from edgecoder.errors import DecodeError, LedgerError, RefusedError, TaskMessageError
from edgecoder.services import Services
from edgecoder.tasks.messages import parse_claim, parse_grant, parse_notice, parse_offer
from edgecoder.wire import canonical

__all__ = ("task_routes",)

Handler = Callable[[Request], Awaitable[Response]]


def _error(code: str, message: str) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=refusal_status(code))


def task_routes(services: Services) -> list[Route]:
    """The ``/mesh/tasks/*`` routes over ``services``."""

    def guarded(handler: Callable[[Request, object], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                body = canonical.decode(await request.body())
            except DecodeError as exc:
                return _error(exc.code, str(exc))
            try:
                return await handler(request, body)
            except (TaskMessageError, RefusedError, LedgerError) as exc:
                return _error(exc.code, str(exc))

        return endpoint

    async def offer(request: Request, body: object) -> Response:
        result = services.worker.consider(parse_offer(body, request.state.peer))
        return JSONResponse({"result": result})

    async def claim(request: Request, body: object) -> Response:
        return JSONResponse(
            {"result": services.origin.on_claim(parse_claim(body, request.state.peer))}
        )

    async def close(request: Request, body: object) -> Response:
        notice = parse_notice(body)
        return JSONResponse({"stopped": services.worker.close(notice.task_id, notice.attempt)})

    async def cancel(request: Request, body: object) -> Response:
        notice = parse_notice(body)
        return JSONResponse({"stopped": services.worker.cancel(notice.task_id, notice.attempt)})

    async def run(request: Request, body: object) -> Response:
        grant = parse_grant(body, services.node_id)
        lines = await services.worker.accept(grant, request.state.peer)
        return StreamingResponse(lines, media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store"})  # fmt: skip

    async def receipt(request: Request, body: object) -> Response:
        worker_sig = await services.worker.countersign(body, request.state.peer)
        return JSONResponse({"worker_sig": worker_sig})

    async def entries(request: Request, body: object) -> Response:
        return JSONResponse(await services.economy.serve_entries(body))

    return [
        Route("/mesh/tasks/offer", guarded(offer), methods=["POST"]),
        Route("/mesh/tasks/claim", guarded(claim), methods=["POST"]),
        Route("/mesh/tasks/close", guarded(close), methods=["POST"]),
        Route("/mesh/tasks/cancel", guarded(cancel), methods=["POST"]),
        Route("/mesh/tasks/run", guarded(run), methods=["POST"]),
        Route("/mesh/tasks/receipt", guarded(receipt), methods=["POST"]),
        Route("/mesh/ledger/entries", guarded(entries), methods=["POST"]),
    ]
