"""A protocol-faithful stand-in for the Ollama daemon's model management API (tests only).

No Ollama here can download models (no internet), so the pull path is tested against
this: ``/api/tags``, ``/api/show``, ``/api/ps``, ``/api/pull`` (streamed NDJSON progress
in Ollama's shape: manifest, per-layer ``downloading`` with ``digest``/``total``/
``completed``, verify, write, ``success``) and ``/api/delete``. It validates what it
receives the way the daemon does — a JSON object with a model name, ``stream`` a
boolean — answers 400/404 with Ollama's ``{"error": ...}`` otherwise, and records each
request so a test can check what the agent sent. Never used outside tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ("FakeOllama",)

LAYER_BYTES = 4 * 1024 * 1024
STEPS = 8


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class FakeOllama:
    """Serves on 127.0.0.1:<free port> in a background thread while open."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.step_s = 0.05
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[
            Route("/api/version", self._version, methods=["GET"]),
            Route("/api/tags", self._tags, methods=["GET"]),
            Route("/api/ps", self._ps, methods=["GET"]),
            Route("/api/show", self._show, methods=["POST"]),
            Route("/api/pull", self._pull, methods=["POST"]),
            Route("/api/delete", self._delete, methods=["DELETE"]),
        ])  # fmt: skip
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")  # fmt: skip
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the fake Ollama did not start"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)

    async def _body(self, request: Request, path: str) -> dict[str, Any] | Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "invalid JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        self.requests.append((path, body))
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            return _error(400, "model is required")
        if "stream" in body and not isinstance(body["stream"], bool):
            return _error(400, "stream must be a boolean")
        return body

    async def _version(self, request: Request) -> Response:
        return JSONResponse({"version": "0.9.0"})

    async def _tags(self, request: Request) -> Response:
        return JSONResponse({"models": list(self.models.values())})

    async def _ps(self, request: Request) -> Response:
        return JSONResponse({"models": []})

    async def _show(self, request: Request) -> Response:
        body = await self._body(request, "/api/show")
        if isinstance(body, Response):
            return body
        name = body.get("model") or body.get("name")
        if name not in self.models:
            return _error(404, f"model '{name}' not found")
        return JSONResponse({
            "modelfile": "", "parameters": "", "template": "",
            "details": {"format": "gguf", "family": "llama", "parameter_size": "1B",
                        "quantization_level": "Q4_K_M"},
            "model_info": {"general.architecture": "llama", "llama.context_length": 4096},
            "capabilities": ["completion"], "modified_at": "2026-01-01T00:00:00Z",
        })  # fmt: skip

    async def _pull(self, request: Request) -> Response:
        body = await self._body(request, "/api/pull")
        if isinstance(body, Response):
            return body
        name = str(body.get("model") or body.get("name"))
        if name.startswith("missing"):
            return _error(404, "pull model manifest: file does not exist")
        digest = "sha256:" + "ab" * 32

        async def progress() -> AsyncIterator[bytes]:
            yield json.dumps({"status": "pulling manifest"}).encode() + b"\n"
            for step in range(STEPS + 1):
                await asyncio.sleep(self.step_s)
                done = LAYER_BYTES * step // STEPS
                line = {"status": f"pulling {digest[7:19]}", "digest": digest,
                        "total": LAYER_BYTES, "completed": done}  # fmt: skip
                yield json.dumps(line).encode() + b"\n"
            for status in ("verifying sha256 digest", "writing manifest", "success"):
                yield json.dumps({"status": status}).encode() + b"\n"
            self.models[name] = {"name": name, "model": name, "size": LAYER_BYTES,
                                 "digest": digest[7:], "modified_at": "2026-01-01T00:00:00Z",
                                 "details": {"format": "gguf", "family": "llama"}}  # fmt: skip

        if body.get("stream") is False:
            async for _ in progress():
                pass
            return JSONResponse({"status": "success"})
        return StreamingResponse(progress(), media_type="application/x-ndjson")

    async def _delete(self, request: Request) -> Response:
        body = await self._body(request, "/api/delete")
        if isinstance(body, Response):
            return body
        name = body.get("model") or body.get("name")
        if self.models.pop(str(name), None) is None:
            return _error(404, f"model '{name}' not found")
        return Response(status_code=200)
