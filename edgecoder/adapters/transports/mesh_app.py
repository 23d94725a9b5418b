"""The Starlette app on the mesh listener: signed node-to-node routes only."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.request_guard import RequestGuardMiddleware
from edgecoder.adapters.transports.mesh_auth import MeshAuthMiddleware
from edgecoder.adapters.transports.statuses import refusal_status
from edgecoder.adapters.transports.task_routes import task_routes
from edgecoder.errors import BlacklistError, DecodeError, RecordError, RefusedError
from edgecoder.events import Blacklisted
from edgecoder.services import Services
from edgecoder.wire import canonical
from edgecoder.wire.records import parse_record

__all__ = ("MAX_RECORDS", "build_mesh_app")

MAX_RECORDS = 256


def _internal_error(scope: object, message: str) -> object:
    return {"error": {"code": "internal_error", "message": message}}


def _refused(code: str, message: str) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=refusal_status(code))


def build_mesh_app(services: Services) -> Starlette:
    """Build the mesh app over ``services``; it has no client or admin route."""

    async def healthz(request: Request) -> Response:
        return JSONResponse(services.health(), headers={"Cache-Control": "no-store"})

    async def ping(request: Request) -> Response:
        # The smallest authenticated route: proves the caller's signature was accepted.
        body = {
            "node_id": services.node_id,
            "peer": request.state.peer,
            "time_ms": services.clock.now_ms(),
        }
        return JSONResponse(body)

    async def records(request: Request) -> Response:
        # Signed records from a peer: each verified by its own author's signature.
        try:
            document = canonical.decode(await request.body())
        except DecodeError as exc:
            return _refused(exc.code, str(exc))
        items = document.get("records") if isinstance(document, dict) else None
        if not isinstance(items, list) or len(items) > MAX_RECORDS:
            return _refused("bad_shape", f"body must be {{records: [at most {MAX_RECORDS}]}}")
        results = []
        for item in items:
            try:
                record = parse_record(item)
                outcome = services.mesh_guard.apply(record)
            except (RecordError, BlacklistError) as exc:
                results.append({"result": "refused", "code": exc.code, "message": str(exc)})
            else:
                results.append({"result": outcome})
                if record.kind == "blacklist":  # heard of here first: it spreads on
                    accused, reason = record.body.get("accused"), record.body.get("reason")
                    services.events.publish(Blacklisted(str(accused), record.author, str(reason)))
        return JSONResponse({"results": results})

    async def gossip(request: Request) -> Response:
        try:
            answer = services.mesh.receive(request.state.peer, await request.body())
        except RefusedError as exc:
            return _refused(exc.code, str(exc))
        return JSONResponse(answer)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            raise exc
        code = "not_found" if exc.status_code == 404 else "http_error"
        body = {"error": {"code": code, "message": f"{exc.detail}: {request.url.path}"}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/mesh/ping", ping, methods=["POST"]),
            Route("/mesh/records", records, methods=["POST"]),
            Route("/mesh/gossip", gossip, methods=["POST"]),
            *task_routes(services),
        ],
        middleware=[
            Middleware(RequestGuardMiddleware, listener="mesh", error_body=_internal_error),
            Middleware(MeshAuthMiddleware, guard=services.mesh_guard),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.services = services
    return app
