"""The client API through the official OpenAI and Ollama clients, in process.

The SDKs talk to the real Starlette app through ``httpx.ASGITransport``; the scripted
backend says a known reply, one word per token, so every field the SDKs parse can be
checked. What only the real model shows (calibration, seeds, its own refusals, its slots)
stays end to end in ``tests/integration/test_client_api.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from edgecoder.config import Config
from edgecoder.config.model import ApiConfig, NodeConfig
from edgecoder.errors import ContextOverflowError
from edgecoder.inference.types import ChatRequest, CompletionRequest
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio

REPLY = "Hello from the script."
HI = [{"role": "user", "content": "Hi there"}]


def sdk(
    node: InProcessNode, key: str | None = None, address: str = "127.0.0.1"
) -> openai.AsyncOpenAI:
    """The OpenAI SDK's async client of ``node``, with the admin key by default."""
    return openai.AsyncOpenAI(
        base_url="http://node/v1",
        api_key=key or node.admin_key,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=node.transport(address)),
    )


@pytest.fixture
async def client(node: InProcessNode) -> AsyncIterator[openai.AsyncOpenAI]:
    async with sdk(node) as c:
        yield c


async def test_models_list_and_retrieve_report_the_context(client: openai.AsyncOpenAI) -> None:
    models = {m.id: m async for m in client.models.list()}
    assert models[MODEL].model_extra == {
        "context_length": 4096, "capabilities": ["completion", "tools", "embedding"]}  # fmt: skip
    assert models[MODEL].owned_by == "edgecoder"
    assert (await client.models.retrieve(MODEL)).id == MODEL


async def test_streamed_chat_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True},  # type: ignore[arg-type]
        max_tokens=3,
    )  # fmt: skip
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the"
    )
    finishing = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishing == ["length"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)
    assert all(c.usage is None for c in chunks[:-1])


async def test_chat_with_array_content_names_the_serving_node(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Name a color."}]},
        ],
        max_completion_tokens=5,
        temperature=0,
    )
    assert raw.headers["x-edgecoder-node"] == node.services.node_id
    timing = dict(part.strip().split(";dur=") for part in raw.headers["server-timing"].split(","))
    assert 0 < float(timing["backend"]) <= float(timing["node"])
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == REPLY
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (6, 4)
    assert completion.usage.total_tokens == 10
    asked = node.backend.requests[-1]
    assert isinstance(asked, ChatRequest)
    assert [(m.role, m.content) for m in asked.messages] == [
        ("system", "You are terse."), ("user", "Name a color.")]  # fmt: skip
    assert (asked.sampling.max_tokens, asked.sampling.temperature) == (5, 0.0)


async def test_completion_with_suffix_reaches_the_backend(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    completion = await client.completions.create(
        model=MODEL, prompt="def add(a, b):\n    ", suffix="\n\nprint(add(1, 2))\n", max_tokens=16
    )
    assert completion.object == "text_completion"
    assert completion.choices[0].text == REPLY
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4
    asked = node.backend.requests[-1]
    assert isinstance(asked, CompletionRequest)
    assert (asked.prompt, asked.suffix) == ("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n")


@pytest.mark.parametrize("encoding", [None, "float", "base64"])
async def test_embeddings(client: openai.AsyncOpenAI, encoding: str | None) -> None:
    # With no encoding_format the SDK asks for base64 itself and decodes it.
    extra = {} if encoding is None else {"encoding_format": encoding}
    result = await client.embeddings.create(model=MODEL, input=["abc", "hello"], **extra)  # type: ignore[arg-type]
    assert [d.index for d in result.data] == [0, 1]
    vectors = [
        list(struct.unpack("<2f", base64.b64decode(d.embedding)))  # type: ignore[arg-type]
        if encoding == "base64"
        else d.embedding
        for d in result.data
    ]
    assert vectors == [[3.0, 1.0], [5.0, 1.0]]
    assert result.usage.prompt_tokens == 2


async def test_errors_through_the_sdk(client: openai.AsyncOpenAI, node: InProcessNode) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(model="no-such-model", messages=HI)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="'n' must be 1") as many:
        await client.chat.completions.create(model=MODEL, messages=HI, n=2)  # type: ignore[arg-type]
    assert many.value.param == "n"
    node.backend.refuse = ContextOverflowError(
        "the prompt has 5001 tokens; the context holds 4096", prompt_tokens=5001,
        context_length=4096,
    )  # fmt: skip
    with pytest.raises(openai.BadRequestError, match="context") as too_long:
        await client.chat.completions.create(model=MODEL, messages=HI, stream=True)  # type: ignore[arg-type]
    assert too_long.value.code == "context_length_exceeded"
    for i, key in enumerate(("x", "ec_" + "A" * 43, "not-a-key")):
        async with sdk(node, key=key, address=f"10.1.{i}.1") as bad:
            with pytest.raises(openai.AuthenticationError):
                await bad.models.list()


async def test_streams_run_concurrently(client: openai.AsyncOpenAI, node: InProcessNode) -> None:
    node.backend.gate = asyncio.Event()  # each generation holds after its first word

    async def one(i: int) -> str | None:
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"Say {i}."}], stream=True
        )
        reasons = [c.choices[0].finish_reason async for c in stream if c.choices]
        return reasons[-1]

    running = asyncio.gather(*(one(i) for i in range(4)))
    await node.backend.until(admissions=4)  # all four in flight at once
    node.backend.gate.set()
    assert await running == ["stop"] * 4


async def test_responses_api_through_the_sdk(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    response = await client.responses.create(
        model=MODEL, input="Name a fruit.", instructions="Be brief.", max_output_tokens=6
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == REPLY
    assert response.usage is not None
    assert response.usage.output_tokens == 4
    asked = node.backend.requests[-1]
    assert isinstance(asked, ChatRequest)
    assert [m.role for m in asked.messages] == ["system", "user"]
    stream = await client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        max_output_tokens=2,
        stream=True,
    )
    events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] == "response.incomplete"  # stopped by max_output_tokens
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Hello from"
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == deltas
    assert [e.sequence_number for e in events] == list(range(len(events)))
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        await client.responses.create(model=MODEL, input="again", previous_response_id="resp_1")


async def test_ollama_client_with_the_key_in_the_path(node: InProcessNode) -> None:
    # VS Code Copilot's Ollama provider takes a URL only: the key rides in the path.
    client = ollama.AsyncClient(host=f"http://node/k/{node.admin_key}", transport=node.transport())
    try:
        async with node.client(key=None) as plain:  # the SDK has no call for the version
            version = (await plain.get(f"/k/{node.admin_key}/api/version")).json()["version"]
        assert tuple(int(x) for x in version.split(".")) >= (0, 6, 4)
        assert MODEL in [m.model for m in (await client.list()).models]
        shown = await client.show(MODEL)
        assert shown.modelinfo is not None
        assert shown.modelinfo["scripted.context_length"] == 4096
        assert shown.capabilities == ["completion", "tools", "embedding"]
        hello = [{"role": "user", "content": "Hello"}]
        streamed = await client.chat(MODEL, hello, stream=True, options={"num_predict": 3})
        parts = [p async for p in streamed]
        assert parts[-1].done
        assert parts[-1].done_reason == "length"
        assert parts[-1].eval_count == 3
        assert "".join(p.message.content or "" for p in parts) == "Hello from the"
        whole = await client.chat(MODEL, [{"role": "user", "content": "Hello"}])
        assert (whole.message.role, whole.message.content) == ("assistant", REPLY)
        generated = await client.generate(
            MODEL, "def square(x):\n    return ", suffix="\n\nprint(2)"
        )
        assert (generated.done, generated.response, generated.eval_count) == (True, REPLY, 4)
        asked = node.backend.requests[-1]
        assert isinstance(asked, CompletionRequest)
        assert asked.suffix == "\n\nprint(2)"
        raw = await client.generate(MODEL, "The capital of France is", raw=True,
                                    options={"num_predict": 2})  # fmt: skip
        assert raw.eval_count == 2
        assert isinstance(node.backend.requests[-1], CompletionRequest)
        templated = await client.generate(MODEL, "Why?", system="Be brief.")
        assert templated.response == REPLY
        asked_chat = node.backend.requests[-1]
        assert isinstance(asked_chat, ChatRequest)
        assert [m.role for m in asked_chat.messages] == ["system", "user"]
        embedded = await client.embed(MODEL, ["a", "bb"])
        assert [list(v) for v in embedded.embeddings] == [[1.0, 1.0], [2.0, 1.0]]
        with pytest.raises(ollama.ResponseError) as missing:
            await client.chat("nope:1b", [{"role": "user", "content": "hi"}])
        assert missing.value.status_code == 404
    finally:
        await client.close()


async def test_request_shapes_from_continue_and_cursor(node: InProcessNode) -> None:
    # Cursor: a Responses-API-shaped body on /chat/completions, expecting chat SSE back.
    cursor = {
        "model": MODEL,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi",
                                          "cache_control": {"type": "ephemeral"}}]}
        ],
        "instructions": "Be brief.",
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "low"},
        "text": {"verbosity": "low"},
        "tool_choice": {"type": "auto"},
        "stream": True,
        "max_output_tokens": 2,
    }  # fmt: skip
    # Continue: autocomplete through /fim/completions.
    continue_fim = {"model": MODEL, "prompt": "x = ", "suffix": "\nprint(x)", "stream": True,
                    "max_tokens": 2}  # fmt: skip
    async with node.client() as client:
        for path, body in (("/v1/chat/completions", cursor), ("/v1/fim/completions", continue_fim)):
            response = await client.post(path, json=body)
            assert response.status_code == 200, response.text
            events = [e for e in response.text.split("\n\n") if e.startswith("data: {")]
            chunks = [json.loads(e[6:]) for e in events]
            assert chunks[-1]["choices"][0]["finish_reason"] == "length"
            assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == (
                "Hello from"
            )
    cursor_asked, fim_asked = node.backend.requests
    assert isinstance(cursor_asked, ChatRequest)
    assert [(m.role, m.content) for m in cursor_asked.messages] == [
        ("system", "Be brief."), ("user", "hi")]  # fmt: skip
    assert isinstance(fim_asked, CompletionRequest)
    assert fim_asked.suffix == "\nprint(x)"


async def test_bad_requests_are_named(node: InProcessNode) -> None:
    cases = [
        ({"model": MODEL}, "messages"),
        ({"messages": HI}, "model"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": HI, "temperature": 9}, "temperature"),
        ({"model": MODEL, "messages": [{"role": "user",
          "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0]"),
    ]  # fmt: skip
    async with node.client() as client:
        for body, param in cases:
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == 400, body
            assert response.json()["error"]["param"] == param
        response = await client.post("/v1/chat/completions", content=b"{not json")
        assert response.status_code == 400
        assert "not valid JSON" in response.json()["error"]["message"]
        mesh = await client.get("/mesh/ping")  # the mesh's routes are not on this listener
        assert mesh.status_code == 404
        assert mesh.json()["error"]["code"] == "not_found"


async def test_llama_cpp_infill(node: InProcessNode) -> None:
    body = {"input_prefix": "def add(a, b):\n    return ", "input_suffix": "\n\nprint(add(1, 2))",
            "n_predict": 3, "temperature": 0}  # fmt: skip
    async with node.client() as client:
        whole = await client.post("/infill", json=body)
        streamed = await client.post("/infill", json={**body, "stream": True})
    assert whole.status_code == 200, whole.text
    assert whole.json() == {"content": "Hello from the", "stop": True, "model": MODEL,
                            "tokens_predicted": 3, "tokens_evaluated": 4,
                            "stop_type": "limit"}  # fmt: skip
    asked = node.backend.requests[0]
    assert isinstance(asked, CompletionRequest)
    assert (asked.prompt, asked.suffix) == (body["input_prefix"], body["input_suffix"])
    events = [json.loads(e[6:]) for e in streamed.text.split("\n\n")
              if e.startswith("data: ")]  # fmt: skip
    assert events[-1]["stop"] is True
    assert all(e["stop"] is False for e in events[:-1])
    assert "".join(e["content"] for e in events) == "Hello from the"


async def test_an_oversized_body_is_413(tmp_path: Path) -> None:
    config = Config(node=NodeConfig(data_dir=tmp_path), api=ApiConfig(max_body_bytes=65536))
    node = await InProcessNode.open(tmp_path, config)
    try:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 70_000}]}
        async with node.client() as client:
            openai_answer = await client.post("/v1/chat/completions", json=body)
            ollama_answer = await client.post("/api/chat", json=body)
        assert openai_answer.status_code == 413
        assert openai_answer.json()["error"]["code"] == "request_too_large"
        assert ollama_answer.status_code == 413
        assert ollama_answer.json() == {"error": "request body exceeds 65536 bytes"}
    finally:
        await node.close()


async def test_rate_limit_is_429_with_retry_after_per_key(tmp_path: Path) -> None:
    config = Config(
        node=NodeConfig(data_dir=tmp_path), api=ApiConfig(rate_limit_per_min=6, rate_limit_burst=3)
    )
    node = await InProcessNode.open(tmp_path, config)
    try:
        key = await node.services.access.create_key("alice", admin=False)
        async with node.client(key=key) as alice:
            codes = [(await alice.get("/v1/models")).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            refused = await alice.get("/v1/models")
            ollama_refused = await alice.get("/api/tags")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert ollama_refused.status_code == 429
        assert isinstance(ollama_refused.json()["error"], str)
        async with node.client() as admin:  # another key has its own bucket
            assert (await admin.get("/v1/models")).status_code == 200
    finally:
        await node.close()
