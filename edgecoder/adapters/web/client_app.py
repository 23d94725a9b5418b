"""The Starlette app on the client listener: health, its OpenAPI document, the OpenAI and
Ollama APIs, the admin routes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.request_guard import RequestGuardMiddleware
from edgecoder.adapters.web.admin_api import admin_routes
from edgecoder.adapters.web.auth import KeyAuthMiddleware, shown_path
from edgecoder.adapters.web.infill_api import infill_routes
from edgecoder.adapters.web.ollama_api import ollama_routes
from edgecoder.adapters.web.openai_api import openai_routes
from edgecoder.adapters.web.openapi import openapi_document
from edgecoder.adapters.web.responses_api import responses_routes
from edgecoder.control import Control
from edgecoder.services import Services

__all__ = ("build_client_app", "internal_error_body")


def internal_error_body(path: str, message: str) -> object:
    """A 500's body in the route's dialect: Ollama's under ``/api/``, else OpenAI's."""
    if path.startswith(("/api/", "/k/***/api/")):
        return {"error": message}
    return {
        "error": {
            "message": message,
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }


def build_client_app(services: Services, control: Control | None = None) -> Starlette:
    """Build the client app over ``services``; it has no mesh route.

    ``control`` adds the operator's admin routes (status, models, mode, keys, reload).
    """

    async def healthz(request: Request) -> Response:
        return JSONResponse(services.health(), headers={"Cache-Control": "no-store"})

    document = openapi_document()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def http_error(request: Request, exc: Exception) -> Response:
        # OpenAI-shaped, so IDE clients show the message instead of a parse error.
        if not isinstance(exc, HTTPException):
            raise exc
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {
            "error": {
                "message": f"{exc.detail}: {request.method} {request.url.path}",
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            *openai_routes(services),
            *responses_routes(services),
            *infill_routes(services),
            *ollama_routes(services),
            *admin_routes(services, control),
        ],
        middleware=[
            Middleware(
                RequestGuardMiddleware,
                listener="api",
                error_body=internal_error_body,
                shown_path=shown_path,
            ),
            Middleware(KeyAuthMiddleware, access=services.access),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.services = services
    return app
