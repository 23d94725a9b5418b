"""The Starlette app on the mesh listener: signed node-to-node routes only."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.transports.mesh_auth import MeshAuthMiddleware
from edgecoder.services import Services

__all__ = ("build_mesh_app",)


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
        ],
        middleware=[Middleware(MeshAuthMiddleware, guard=services.mesh_guard)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.services = services
    return app
