"""The Starlette app on the mesh listener: health now; signed mesh routes join it."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.services import Services

__all__ = ("build_mesh_app",)


def build_mesh_app(services: Services) -> Starlette:
    """Build the mesh app over ``services``; it has no client or admin route."""

    async def healthz(request: Request) -> Response:
        return JSONResponse(services.health(), headers={"Cache-Control": "no-store"})

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            raise exc
        code = "not_found" if exc.status_code == 404 else "http_error"
        body = {"error": {"code": code, "message": f"{exc.detail}: {request.url.path}"}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app = Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"])],
        exception_handlers={HTTPException: http_error},
    )
    app.state.services = services
    return app
