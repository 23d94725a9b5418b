"""The Starlette app on the client listener: health, its OpenAPI document, the OpenAI,
Anthropic and Ollama APIs, the claim routes, the admin routes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from edgecoder.adapters.request_guard import RequestGuardMiddleware
from edgecoder.adapters.web.admin_api import admin_routes
from edgecoder.adapters.web.anthropic_api import anthropic_routes
from edgecoder.adapters.web.auth import PathKeyMiddleware, shown_path
from edgecoder.adapters.web.dialects import ANTHROPIC, OLLAMA, OPENAI, Dialect
from edgecoder.adapters.web.errors import ApiError
from edgecoder.adapters.web.events_api import events_routes
from edgecoder.adapters.web.infill_api import infill_routes
from edgecoder.adapters.web.ollama_api import ollama_routes
from edgecoder.adapters.web.openai_api import openai_routes
from edgecoder.adapters.web.openapi import openapi_document
from edgecoder.adapters.web.responses_api import responses_routes
from edgecoder.adapters.web.routing import RouteMaker, internal_error_body
from edgecoder.adapters.web.setup_api import setup_routes
from edgecoder.control import Control
from edgecoder.services import Services

__all__ = ("build_client_app",)


def _cors(origins: tuple[str, ...]) -> list[Middleware]:
    """CORS for browser clients from ``api.cors_origins`` (none by default).

    Outermost, so a preflight ``OPTIONS`` is answered before any route asks for a key (a
    browser sends no credentials with it); the real request then needs its key as usual.
    """
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
            allow_headers=["*"],
            expose_headers=["X-Request-Id", "X-EdgeCoder-Node", "Retry-After", "Server-Timing"],
            max_age=600,
        )
    ]


def dialect_for(path: str) -> Dialect:
    """The dialect of a path no route answers: Ollama's under ``/api``, Anthropic's under
    ``/v1/messages``, else OpenAI's."""
    if path == "/api" or path.startswith("/api/"):
        return OLLAMA
    if path.startswith("/v1/messages"):
        return ANTHROPIC
    return OPENAI


def build_client_app(services: Services, control: Control | None = None) -> Starlette:
    """Build the client app over ``services``; it has no mesh route.

    ``control`` adds the operator's admin routes (status, models, mode, keys, reload).
    """
    route = RouteMaker(services.access, services.served_by)
    document = openapi_document()

    async def healthz(request: Request) -> Response:
        return JSONResponse(services.health(), headers={"Cache-Control": "no-store"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def ollama_probe(request: Request) -> Response:
        # Ollama clients check "is Ollama running" with GET / (and HEAD /), keyless.
        return PlainTextResponse("Ollama is running")

    async def http_error(request: Request, exc: Exception) -> Response:
        # In the dialect the path belongs to, so every client shows the message.
        if not isinstance(exc, HTTPException):
            raise exc
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"{exc.detail}: {request.method} {request.url.path}"
        error = ApiError(exc.status_code, message, code)
        body = dialect_for(request.url.path).error_body(error)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app = Starlette(
        routes=[
            route("/", ollama_probe, OLLAMA, ["GET"], public=True),
            route("/healthz", healthz, OPENAI, ["GET"], public=True),
            route("/openapi.json", openapi, OPENAI, ["GET"], public=True),
            *openai_routes(services, route),
            *responses_routes(services, route),
            *anthropic_routes(services, route),
            *infill_routes(services, route),
            *ollama_routes(services, route),
            *setup_routes(services, route),
            *admin_routes(services, route, control),
            *events_routes(services, route),
        ],
        middleware=[
            *_cors(services.config.api.cors_origins),
            Middleware(
                RequestGuardMiddleware,
                listener="api",
                error_body=internal_error_body,
                shown_path=shown_path,
            ),
            Middleware(PathKeyMiddleware),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.services = services
    return app
