"""What real clients tripped on, each fixed and checked in process: Continue's FIM URL,
LiteLLM's empty images, Ollama's probes and error shape, temperatures above 2, CORS,
token-id embeddings, fields the node cannot honour, and the default output cap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgecoder.config import Config
from edgecoder.config.model import ApiConfig, InferenceConfig, NodeConfig
from edgecoder.inference.types import ChatRequest, CompletionRequest, EmbeddingRequest
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "Hi there"}]


async def test_continues_fim_url_without_the_trailing_slash(node: InProcessNode) -> None:
    body = {"model": MODEL, "prompt": "def f(", "suffix": "):\n", "stream": True}
    async with node.client(key=None) as http:
        # new URL("fim/completions", "http://node:4304/v1") is http://node:4304/fim/completions
        for path in ("/fim/completions", f"/k/{node.admin_key}/fim/completions"):
            headers = (
                {} if path.startswith("/k/") else {"Authorization": f"Bearer {node.admin_key}"}
            )
            response = await http.post(path, json=body, headers=headers)
            assert response.status_code == 200, path
            assert "data: [DONE]" in response.text
    asked = node.backend.requests[-1]
    assert isinstance(asked, CompletionRequest)
    assert (asked.prompt, asked.suffix) == ("def f(", "):\n")


async def test_litellm_sends_empty_images(node: InProcessNode) -> None:
    async with node.client() as http:
        chat = await http.post("/api/chat", json={"model": MODEL, "stream": False, "messages": [
            {"role": "user", "content": "Hi", "images": []}]})  # fmt: skip
        generate = await http.post(
            "/api/generate", json={"model": MODEL, "prompt": "Hi", "images": [], "stream": False}
        )
        with_image = await http.post("/api/chat", json={"model": MODEL, "messages": [
            {"role": "user", "content": "Hi", "images": ["aGVsbG8="]}]})  # fmt: skip
    assert (chat.status_code, generate.status_code) == (200, 200)
    assert with_image.status_code == 400
    assert "read text only" in with_image.json()["error"]


async def test_ollama_probes_answer_without_a_key(node: InProcessNode) -> None:
    async with node.client(key=None) as http:
        get = await http.get("/")
        head = await http.head("/")
    assert (get.status_code, get.text) == (200, "Ollama is running")
    assert head.status_code == 200
    assert get.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("method", "path", "shape"),
    [("POST", "/api/nope", "ollama"), ("GET", "/api/chat", "ollama"),
     ("GET", "/v1/nope", "openai"), ("GET", "/v1/chat/completions", "openai"),
     ("POST", "/v1/messages/nope", "anthropic")],
)  # fmt: skip
async def test_unknown_routes_answer_in_their_dialect(
    node: InProcessNode, method: str, path: str, shape: str
) -> None:
    async with node.client() as http:
        response = await http.request(method, path)
    assert response.status_code in {404, 405}
    error = response.json()
    if shape == "ollama":  # the ollama npm client shows [object Object] for anything else
        assert isinstance(error["error"], str)
        assert path in error["error"]
    elif shape == "anthropic":
        assert error["type"] == "error"
        assert error["error"]["type"] == "not_found_error"
    else:
        assert error["error"]["code"] in {"not_found", "method_not_allowed"}


async def test_ollama_temperature_above_2_is_accepted(node: InProcessNode) -> None:
    async with node.client() as http:
        body = {"model": MODEL, "messages": HI, "stream": False, "options": {"temperature": 5}}
        response = await http.post("/api/chat", json=body)
    assert response.status_code == 200
    asked = node.backend.requests[-1]
    assert isinstance(asked, ChatRequest)
    assert asked.sampling.temperature == 5.0


async def cors_node(tmp_path: Path, origins: tuple[str, ...]) -> InProcessNode:
    config = Config(
        node=NodeConfig(data_dir=tmp_path),
        api=ApiConfig(rate_limit_per_min=60_000, rate_limit_burst=10_000, cors_origins=origins),
    )
    return await InProcessNode.open(tmp_path, config)


async def test_cors_preflight_needs_no_key_and_allowed_origins_get_answers(tmp_path: Path) -> None:
    node = await cors_node(tmp_path, ("http://localhost:5173",))
    try:
        preflight = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
        async with node.client(key=None) as http:
            allowed = await http.options("/v1/chat/completions", headers=preflight)
            other = await http.options(
                "/v1/chat/completions", headers={**preflight, "Origin": "http://evil.example"}
            )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert other.status_code == 400
        async with node.client() as http:
            answer = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": HI},
                                     headers={"Origin": "http://localhost:5173"})  # fmt: skip
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    finally:
        await node.close()


async def test_no_cors_by_default(node: InProcessNode) -> None:
    async with node.client() as http:
        answer = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": HI},
                                 headers={"Origin": "http://localhost:5173"})  # fmt: skip
    assert "access-control-allow-origin" not in answer.headers


async def test_embeddings_take_cl100k_token_ids(node: InProcessNode) -> None:
    # What LangChain's OpenAIEmbeddings sends by default: tiktoken cl100k_base ids.
    hello = [15339, 1917]  # "hello world"
    code = [755, 24748, 4658, 471, 220, 2983]  # "def hello(): return 42"
    async with node.client() as http:
        many = await http.post("/v1/embeddings", json={"model": MODEL, "input": [hello, code]})
        one = await http.post("/v1/embeddings", json={"model": MODEL, "input": hello})
    assert many.status_code == 200, many.text
    assert one.status_code == 200
    texts = [r.inputs for r in node.backend.requests if isinstance(r, EmbeddingRequest)]
    assert texts == [("hello world", "def hello(): return 42"), ("hello world",)]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/embeddings", {"input": "x", "dimensions": 256}, "dimensions"),
        ("/v1/embeddings", {"input": [[999_999_999]]}, "input"),
        ("/api/embed", {"input": "x", "dimensions": 256}, "dimensions"),
        ("/v1/chat/completions", {"messages": HI, "logprobs": True}, "logprobs"),
        ("/v1/chat/completions", {"messages": HI, "top_logprobs": 2}, "top_logprobs"),
        ("/v1/completions", {"prompt": "x", "logprobs": 3}, "logprobs"),
        ("/api/chat", {"messages": HI, "logprobs": True}, "logprobs"),
    ],
)  # fmt: skip
async def test_what_cannot_be_honoured_is_a_400(
    node: InProcessNode, path: str, body: dict[str, Any], param: str
) -> None:
    async with node.client() as http:
        response = await http.post(path, json={"model": MODEL, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if isinstance(error, dict):
        assert error["param"] == param
    else:
        assert f"'{param}'" in error


@pytest.mark.parametrize(("default", "expected"), [(2048, 2048), (100, 100), (0, None)])
async def test_a_request_without_max_tokens_gets_the_default_cap(
    tmp_path: Path, default: int, expected: int | None
) -> None:
    config = Config(node=NodeConfig(data_dir=tmp_path),
                    inference=InferenceConfig(default_max_tokens=default))  # fmt: skip
    node = await InProcessNode.open(tmp_path, config)
    try:
        async with node.client() as http:
            for path, body in (("/v1/chat/completions", {"messages": HI}),
                               ("/api/chat", {"messages": HI, "stream": False}),
                               ("/v1/completions", {"prompt": "x"}),
                               ("/v1/messages", {"messages": HI, "max_tokens": 7})):  # fmt: skip
                response = await http.post(path, json={"model": MODEL, **body})
                assert response.status_code == 200, (path, response.text)
                asked = node.backend.requests[-1]
                assert isinstance(asked, ChatRequest | CompletionRequest)
                wanted = 7 if path == "/v1/messages" else expected  # an explicit value wins
                assert asked.sampling.max_tokens == wanted, path
    finally:
        await node.close()


def test_the_default_cap_is_a_live_setting() -> None:
    from edgecoder.control import _LIVE_KEYS

    assert "inference.default_max_tokens" in _LIVE_KEYS  # /admin/reload applies it at once
    assert InferenceConfig().default_max_tokens == 2048
