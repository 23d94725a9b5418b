"""The Starlette app on the client listener: health now; the IDE APIs and UI join it."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.services import Services

__all__ = ("build_client_app",)

_ERROR_TYPES = {401: "authentication_error", 404: "invalid_request_error"}


def build_client_app(services: Services) -> Starlette:
    """Build the client app over ``services``; it has no mesh route."""

    async def healthz(request: Request) -> Response:
        return JSONResponse(services.health(), headers={"Cache-Control": "no-store"})

    async def http_error(request: Request, exc: Exception) -> Response:
        # OpenAI-shaped, so IDE clients show the message instead of a parse error.
        if not isinstance(exc, HTTPException):
            raise exc
        body = {
            "error": {
                "message": f"{exc.detail}: {request.method} {request.url.path}",
                "type": _ERROR_TYPES.get(exc.status_code, "invalid_request_error"),
                "param": None,
                "code": "not_found" if exc.status_code == 404 else None,
            }
        }
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app = Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"])],
        exception_handlers={HTTPException: http_error},
    )
    app.state.services = services
    return app
