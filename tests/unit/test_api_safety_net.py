"""The client API's last resorts: JSON 500s with request ids, auth-failure limits, disconnects."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from edgecoder.access import AUTH_FAILURE_BURST
from edgecoder.adapters.web import requests
from edgecoder.errors import DiskFullError, ReadOnlyStorageError, StorageIOError
from edgecoder.inference.types import ModelInfo
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio


def _break_listing(node: InProcessNode, error: Exception | None = None) -> None:
    async def broken() -> list[ModelInfo]:
        raise error or RuntimeError("the disk ate the registry")

    node.backend.list_models = broken  # type: ignore[method-assign]


async def test_an_unexpected_exception_is_a_json_500_with_a_request_id(
    node: InProcessNode, caplog: pytest.LogCaptureFixture
) -> None:
    _break_listing(node)
    caplog.set_level(logging.INFO)
    async with node.client() as client:
        openai = await client.get("/v1/models", headers={"X-Request-Id": "ide-42"})
        ollama = await client.get("/api/tags")
    assert openai.status_code == 500
    assert openai.headers["x-request-id"] == "ide-42"
    error = openai.json()["error"]
    assert error["type"] == "server_error"
    assert error["code"] == "internal_error"
    assert "ide-42" in error["message"]
    assert ollama.status_code == 500
    rid = ollama.headers["x-request-id"]
    assert rid in ollama.json()["error"]
    lines = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lines) == 2
    assert "ide-42" in lines[0].getMessage()
    assert "RuntimeError" in lines[0].getMessage()
    assert rid in lines[1].getMessage()
    assert all(r.exc_info is None for r in lines), "one line, not a traceback"


async def test_a_key_in_the_path_never_reaches_the_log(
    node: InProcessNode, caplog: pytest.LogCaptureFixture
) -> None:
    _break_listing(node)
    async with node.client(key=None) as client:
        response = await client.get(f"/k/{node.admin_key}/api/tags")
    assert response.status_code == 500
    assert isinstance(response.json()["error"], str)  # Ollama's dialect behind the prefix
    assert node.admin_key not in caplog.text
    assert "/k/***/api/tags" in caplog.text


async def test_every_answer_carries_a_request_id(node: InProcessNode) -> None:
    async with node.client() as client:
        ok = await client.get("/healthz")
        refused = await client.post("/v1/chat/completions", content=b"{")
        unusable = await client.get("/healthz", headers={"X-Request-Id": "a b\u00e9".encode()})
    assert len(ok.headers["x-request-id"]) == 16
    assert len(refused.headers["x-request-id"]) == 16
    assert unusable.headers["x-request-id"] != "a b\u00e9"


async def test_failed_authentication_is_limited_per_address(node: InProcessNode) -> None:
    async with node.client(key="ec_" + "x" * 43, address="10.0.0.9") as guesser:
        answers = [(await guesser.get("/v1/models")).status_code for _ in range(30)]
    assert answers[:AUTH_FAILURE_BURST] == [401] * AUTH_FAILURE_BURST
    assert set(answers[AUTH_FAILURE_BURST:]) == {429}
    async with node.client(address="10.0.0.9") as same_address:
        blocked = await same_address.get("/v1/models")
    assert blocked.status_code == 429, "a right key from a guessing address waits too"
    assert int(blocked.headers["retry-after"]) >= 1
    async with node.client(address="10.0.0.10") as other:
        assert (await other.get("/v1/models")).status_code == 200
        assert (await other.get("/healthz")).status_code == 200


def _scope(path: str, key: str) -> dict[str, Any]:
    """An HTTP scope for ``POST path`` with ``key``, as a server hands it to the app."""
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("node", 80),
        "headers": [(b"content-type", b"application/json"),
                    (b"authorization", b"Bearer " + key.encode())],
    }  # fmt: skip


async def _call(app: Any, path: str, body: bytes, key: str, disconnect: asyncio.Event) -> list[Any]:
    """Drive the ASGI app by hand: send ``body``, then disconnect when ``disconnect`` is set."""
    sent: list[Any] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(path, key), receive, send)
    return sent


@pytest.mark.parametrize("path", ["/v1/embeddings", "/api/embed"])
async def test_an_embedding_stops_when_its_client_goes_away(node: InProcessNode, path: str) -> None:
    node.backend.embed_gate = asyncio.Event()  # never set: the embedding would wait forever
    gone = asyncio.Event()
    body = json.dumps({"model": MODEL, "input": ["a"] * 100}).encode()
    call = asyncio.create_task(_call(node.client_app, path, body, node.admin_key, gone))
    await node.backend.embed_started.wait()
    gone.set()
    sent = await asyncio.wait_for(call, timeout=60)  # a bound on a hang, not a speed check
    assert sent[0]["status"] == 499


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
async def test_a_client_that_leaves_mid_stream_cancels_the_generation(
    node: InProcessNode, path: str
) -> None:
    node.backend.gate = asyncio.Event()  # never set: the reply would wait forever
    gone = asyncio.Event()
    sent: list[Any] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            body = json.dumps({"model": MODEL, "stream": True,
                               "messages": [{"role": "user", "content": "Go on."}]})  # fmt: skip
            return {"type": "http.request", "body": body.encode(), "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if b"Hello" in message.get("body", b""):
            gone.set()  # the client read the first word and went away

    await asyncio.wait_for(node.client_app(_scope(path, node.admin_key), receive, send), 60)
    await asyncio.wait_for(node.backend.until(cancellations=1), 60)  # bounds a hang only
    assert sent[0]["status"] == 200
    assert node.backend.cancellations == 1
    assert not any(b"from" in m.get("body", b"") for m in sent), "nothing after the first word"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (DiskFullError("data dir /x is full (No space left on device)"), 507,
         "insufficient_storage"),
        (ReadOnlyStorageError("data dir /x is read-only"), 503, "storage_unavailable"),
        (StorageIOError("data dir /x: I/O error"), 503, "storage_unavailable"),
    ],
)  # fmt: skip
async def test_storage_faults_answer_507_or_503_in_the_dialect(
    node: InProcessNode, error: Exception, status: int, code: str
) -> None:
    _break_listing(node, error)
    async with node.client() as client:
        openai = await client.get("/v1/models")
        ollama = await client.get("/api/tags")
    assert openai.status_code == status
    assert openai.json()["error"]["code"] == code
    assert openai.json()["error"]["message"] == str(error)
    assert openai.headers["retry-after"] == "5"
    assert ollama.status_code == status
    assert ollama.json() == {"error": str(error)}


async def test_a_body_that_never_finishes_gets_a_408(
    node: InProcessNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "BODY_TIMEOUT_S", 0.2)
    sent: list[Any] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"model": "', "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = _scope("/api/chat", node.admin_key)
    await asyncio.wait_for(node.client_app(scope, receive, send), timeout=60)
    assert sent[0]["status"] == 408
    assert "not sent within" in json.loads(sent[1]["body"])["error"]


async def test_a_key_whose_use_cannot_be_recorded_still_works(
    node: InProcessNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object) -> None:
        raise DiskFullError("data dir /x is full (No space left on device)")

    monkeypatch.setattr("edgecoder.storage.api_keys.touch_key", full)
    async with node.client() as client:
        response = await client.get("/v1/models")
    assert response.status_code == 200
