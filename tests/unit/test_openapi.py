"""The OpenAPI document matches the client app's routes exactly, and is served unauthenticated."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route

from edgecoder.adapters.web.openapi import openapi_document
from tests.inprocess import InProcessNode

pytestmark = pytest.mark.anyio


def _routes(node: InProcessNode) -> set[tuple[str, str]]:
    found = set()
    for route in node.client_app.routes:
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        found |= {(method.lower(), path) for method in route.methods or () if method != "HEAD"}
    return found


async def test_the_document_lists_every_route_and_nothing_else(node: InProcessNode) -> None:
    paths = openapi_document()["paths"]
    documented = {(method, path) for path, item in paths.items() for method in item}
    assert documented == _routes(node)


async def test_the_document_is_served_without_a_key(node: InProcessNode) -> None:
    async with node.client(key=None) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == openapi_document()
    assert response.json()["openapi"].startswith("3.1")


async def test_every_route_but_the_public_ones_needs_a_key(node: InProcessNode) -> None:
    public = {"/", "/healthz", "/openapi.json"}
    for i, (method, path) in enumerate(sorted(_routes(node))):
        url = re.sub(r"\{\w+\}", "x", path)
        # Each from its own address: failed authentications are limited per address.
        async with node.client(key=None, address=f"10.0.{i}.1") as client:
            response = await client.request(method, url)
            if path in public:
                assert response.status_code == 200, (method, path)
                continue
            if path == "/setup":
                # Public too, and gone (404) on a node with no setup code open.
                assert response.status_code == 404, (method, path)
                continue
            assert response.status_code == 401, (method, path)
            error = response.json()["error"]
            if path.startswith("/api/"):
                assert isinstance(error, str), (method, path)  # Ollama's dialect
            elif path.startswith("/v1/messages"):
                assert error["type"] == "authentication_error", (method, path)  # Anthropic's
            else:
                assert error["code"] == "invalid_api_key", (method, path)
