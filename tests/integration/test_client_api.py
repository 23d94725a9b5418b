"""The client API with the real Gemma 270M model, through the official OpenAI and Ollama clients."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.integration.nodes import ModelNode

pytestmark = [pytest.mark.integration, pytest.mark.model]

MODEL = "gemma3:270m"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelNode]:
    running = ModelNode(
        tmp_path_factory.mktemp("node"), "[inference]\ncontext_length = 2048\n", calibrate=True
    )
    yield running
    running.stop()


@pytest.fixture
def client(node: ModelNode) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{node.url}/v1", api_key=node.key, max_retries=0) as c:
        yield c


def test_calibration_measures_the_model_and_the_advert_says_so(node: ModelNode) -> None:
    deadline = time.monotonic() + 120
    advert: dict[str, Any] = {}
    while time.monotonic() < deadline:
        advert = node.agent.get(f"{node.url}/healthz")[1]["mesh"]["advert"] or {}
        if advert.get("decode_tps"):
            break
        time.sleep(0.5)
    assert advert["decode_tps"] > 0
    assert advert["prefill_tps"] > 0
    assert advert["backend"] == "llamacpp"
    assert [(m["name"], m["size_class"]) for m in advert["models"]] == [("gemma3:270m", "xs")]


def test_models_list_and_retrieve_report_the_true_context(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert MODEL in models
    assert models[MODEL].model_extra["context_length"] == 2048  # type: ignore[index]
    assert client.models.retrieve(MODEL).id == MODEL


def test_streamed_chat_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Write a haiku about code."}],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=12,
            seed=7,
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["length"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens > 5
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_with_array_content_names_the_serving_node(
    client: openai.OpenAI, node: ModelNode
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Name a color."}]},
        ],
        max_completion_tokens=5,
        temperature=0,
    )
    assert raw.headers["x-edgecoder-node"] == node.node_id
    timing = dict(part.strip().split(";dur=") for part in raw.headers["server-timing"].split(","))
    assert 0 < float(timing["backend"]) <= float(timing["node"])
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 5
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_same_seed_same_answer(client: openai.OpenAI) -> None:
    def ask() -> str:
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=10,
            seed=42,
            temperature=0.9,
        )
        return reply.choices[0].message.content or ""

    assert ask() == ask()


def test_completion_with_suffix(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL,
        prompt="def add(a, b):\n    ",
        suffix="\n\nprint(add(1, 2))\n",
        max_tokens=16,
        temperature=0,
    )
    assert completion.object == "text_completion"
    assert "print(add(1, 2))" not in completion.choices[0].text
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 16


@pytest.mark.parametrize("encoding", [None, "float", "base64"])
def test_embeddings(client: openai.OpenAI, encoding: str | None) -> None:
    # With no encoding_format the SDK asks for base64 itself and decodes it.
    extra = {} if encoding is None else {"encoding_format": encoding}
    result = client.embeddings.create(model=MODEL, input=["def f(): pass", "hello"], **extra)  # type: ignore[arg-type]
    assert [d.index for d in result.data] == [0, 1]
    vectors = [
        list(struct.unpack("<640f", base64.b64decode(d.embedding)))  # type: ignore[arg-type]
        if encoding == "base64"
        else d.embedding
        for d in result.data
    ]
    assert len(vectors[0]) == 640
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3
    assert vectors[0] != vectors[1]
    assert result.usage.prompt_tokens > 0


def test_errors_through_the_sdk(client: openai.OpenAI, node: ModelNode) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="context") as too_long:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "word " * 5000}]
        )
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4000
        )
    with pytest.raises(openai.BadRequestError, match="does not support tools"):
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "weather?"}],
            tools=[{"type": "function", "function": {"name": "weather", "parameters": {}}}],
        )
    with pytest.raises(openai.BadRequestError, match="'n' must be 1"):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], n=2
        )
    for key in ("x", "ec_" + "A" * 43, "not-a-key"):
        bad = openai.OpenAI(base_url=f"{node.url}/v1", api_key=key, max_retries=0)
        with bad, pytest.raises(openai.AuthenticationError):
            bad.models.list()


def test_async_client_streams_concurrently(node: ModelNode) -> None:
    async def main() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=f"{node.url}/v1", api_key=node.key, max_retries=0
        ) as client:

            async def one(i: int) -> str:
                stream = await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"Say {i}."}],
                    stream=True,
                    max_tokens=8,
                )
                reasons = [c.choices[0].finish_reason async for c in stream if c.choices]
                return str(reasons[-1])

            # One slot: three of these queue behind the first, and all complete.
            return await asyncio.gather(*(one(i) for i in range(4)))

    assert asyncio.run(main()) == ["length"] * 4


def test_sse_framing_bytes(node: ModelNode) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "max_tokens": 4,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {node.key}"}
    with httpx.stream(
        "POST", f"{node.url}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_bytes())
    events = raw.split(b"\n\n")
    assert events[-1] == b""
    assert events[-2] == b"data: [DONE]"
    payloads = [json.loads(e[len(b"data: ") :]) for e in events[:-2] if not e.startswith(b":")]
    assert all(e.startswith((b"data: {", b": keep-alive")) for e in events[:-2])
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"}
    assert len({p["id"] for p in payloads}) == 1
    assert payloads[-1]["choices"] == []
    assert payloads[-1]["usage"]["completion_tokens"] == 4


def test_ollama_client(node: ModelNode) -> None:
    # VS Code Copilot's Ollama provider takes a URL only: the key rides in the path.
    with ollama.Client(host=f"{node.url}/k/{node.key}") as client:
        _exercise_ollama(client)


def _exercise_ollama(client: ollama.Client) -> None:
    version = client._client.get("/api/version").json()["version"]
    assert tuple(int(x) for x in version.split(".")) >= (0, 6, 4)
    assert MODEL in [m.model for m in client.list().models]
    shown = client.show(MODEL)
    assert shown.modelinfo is not None
    assert shown.modelinfo["gemma3.context_length"] == 2048
    assert "completion" in (shown.capabilities or [])
    parts = list(
        client.chat(
            MODEL,
            [{"role": "user", "content": "Hello"}],
            stream=True,
            options={"num_predict": 6, "seed": 1},
        )
    )
    assert parts[-1].done
    assert parts[-1].eval_count == 6
    assert "".join(p.message.content or "" for p in parts)
    generated = client.generate(
        MODEL,
        "def square(x):\n    return ",
        suffix="\n\nprint(square(3))",
        options={"num_predict": 8},
    )
    assert generated.done
    assert generated.eval_count is not None
    assert generated.eval_count <= 8
    raw = client.generate(MODEL, "The capital of France is", raw=True, options={"num_predict": 3})
    assert raw.eval_count == 3
    embedded = client.embed(MODEL, ["a", "b"])
    assert len(embedded.embeddings) == 2
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat("nope:1b", [{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404


def test_ndjson_framing_bytes(node: ModelNode) -> None:
    headers = {"Authorization": f"Bearer {node.key}"}
    body = {"model": MODEL, "prompt": "Once upon a time", "options": {"num_predict": 5}}
    with httpx.stream(
        "POST", f"{node.url}/api/generate", json=body, headers=headers, timeout=60
    ) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        raw = b"".join(response.iter_bytes())
    lines = raw.split(b"\n")
    assert lines[-1] == b""
    objects = [json.loads(line) for line in lines[:-1]]
    assert all(o["done"] is False and isinstance(o["response"], str) for o in objects[:-1])
    assert objects[-1]["done"] is True
    assert objects[-1]["done_reason"] == "length"
    assert objects[-1]["eval_count"] == 5


def test_request_shapes_from_continue_and_cursor(node: ModelNode) -> None:
    headers = {"Authorization": f"Bearer {node.key}"}
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
        "max_output_tokens": 4,
    }  # fmt: skip
    # Continue: autocomplete through /fim/completions.
    continue_fim = {"model": MODEL, "prompt": "x = ", "suffix": "\nprint(x)", "stream": True,
                    "max_tokens": 4}  # fmt: skip
    for path, body in (("/v1/chat/completions", cursor), ("/v1/fim/completions", continue_fim)):
        response = httpx.post(f"{node.url}{path}", json=body, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        events = [e for e in response.text.split("\n\n") if e.startswith("data: {")]
        chunks = [json.loads(e[6:]) for e in events]
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)


def test_bad_requests_are_named(node: ModelNode) -> None:
    headers = {"Authorization": f"Bearer {node.key}"}
    cases = [
        ({"model": MODEL}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": 9},
         "temperature"),
        ({"model": MODEL, "messages": [{"role": "user",
          "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0]"),
    ]  # fmt: skip
    for body, param in cases:
        response = httpx.post(f"{node.url}/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param
    response = httpx.post(f"{node.url}/v1/chat/completions", content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
    response = httpx.get(f"{node.url}/mesh/ping", headers=headers)
    assert response.status_code == 404


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelNode]:
    config = (
        "[inference]\ncontext_length = 2048\nmax_queue = 0\n"
        "[api]\nrate_limit_burst = 400\nmax_body_bytes = 65536\nkeepalive_s = 1\n"
    )
    running = ModelNode(tmp_path_factory.mktemp("tight"), config)
    yield running
    running.stop()


def _stream_until_first_token(node: ModelNode, max_tokens: int) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell a long story."}],
            "stream": True, "max_tokens": max_tokens, "ignore_eos": True}  # fmt: skip
    headers = {"Authorization": f"Bearer {node.key}"}
    with httpx.stream(
        "POST", f"{node.url}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # leave mid-stream: the connection closes here


def test_disconnect_mid_stream_frees_the_slot(tight: ModelNode) -> None:
    headers = {"Authorization": f"Bearer {tight.key}"}
    small = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    # The abandoned generation would hold the only slot for 1500 tokens (~40 s) if not
    # cancelled, longer than the deadline below.
    _stream_until_first_token(tight, max_tokens=1500)
    # A liveness bound, not a speed claim: a leaked slot would stay busy far longer.
    deadline = time.monotonic() + 30.0
    status = 0
    while time.monotonic() < deadline:
        status = httpx.post(
            f"{tight.url}/v1/chat/completions", json=small, headers=headers, timeout=60
        ).status_code
        if status == 200:
            break
        assert status == 503
    assert status == 200


def test_full_queue_is_refused_with_503(tight: ModelNode) -> None:
    headers = {"Authorization": f"Bearer {tight.key}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Write."}],
            "stream": True, "max_tokens": 300, "ignore_eos": True}  # fmt: skip
    with httpx.stream(
        "POST", f"{tight.url}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as busy:
        assert busy.status_code == 200
        # Once a token arrives, the generation holds the only slot. Keep the iterator
        # referenced: dropping it would close the connection and cancel the generation.
        lines = busy.iter_lines()
        while not ('"content":"' in (line := next(lines)) and '""' not in line):
            pass
        refused = httpx.post(
            f"{tight.url}/v1/chat/completions",
            json={**body, "stream": False},
            headers=headers,
            timeout=60,
        )
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"


def test_oversized_body_is_413(tight: ModelNode) -> None:
    headers = {"Authorization": f"Bearer {tight.key}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = httpx.post(f"{tight.url}/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_rate_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    limited = ModelNode(tmp_path, "[api]\nrate_limit_per_min = 6\nrate_limit_burst = 3\n")
    try:
        headers = {"Authorization": f"Bearer {limited.key}"}
        url = f"{limited.url}/v1/models"
        codes = [httpx.get(url, headers=headers).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = httpx.get(f"{limited.url}/v1/models", headers=headers)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        # Another key has its own bucket.
        admin = {"Authorization": f"Bearer {limited.admin_key}"}
        assert httpx.get(f"{limited.url}/v1/models", headers=admin).status_code == 200
    finally:
        limited.stop()


def test_responses_api_through_the_sdk(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, input="Name a fruit.", instructions="Be brief.", max_output_tokens=6
    )
    assert response.object == "response"
    assert response.output_text
    assert response.usage is not None
    assert response.usage.output_tokens <= 6
    events = list(
        client.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
            max_output_tokens=5,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] == "response.incomplete"  # stopped by max_output_tokens
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == deltas
    assert [e.sequence_number for e in events] == list(range(len(events)))
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model=MODEL, input="again", previous_response_id="resp_1")


def test_llama_cpp_infill(node: ModelNode) -> None:
    headers = {"Authorization": f"Bearer {node.key}"}
    body = {"input_prefix": "def add(a, b):\n    return ", "input_suffix": "\n\nprint(add(1, 2))",
            "n_predict": 6, "temperature": 0}  # fmt: skip
    response = httpx.post(f"{node.url}/infill", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["stop"] is True
    assert result["model"] == MODEL
    assert result["tokens_predicted"] <= 6
    streamed = httpx.post(
        f"{node.url}/infill", json={**body, "stream": True}, headers=headers, timeout=60
    )
    events = [json.loads(e[6:]) for e in streamed.text.split("\n\n") if e.startswith("data: ")]
    assert events[-1]["stop"] is True
    assert all(e["stop"] is False for e in events[:-1])


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=5)
    except httpx.ConnectError:
        return True
    return False


def test_sigterm_lets_an_in_flight_stream_finish(tmp_path: Path) -> None:
    draining = ModelNode(tmp_path, "[daemon]\nshutdown_timeout_s = 60\n")
    headers = {"Authorization": f"Bearer {draining.key}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Go on."}],
            "stream": True, "max_tokens": 120, "ignore_eos": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    assert draining.agent.proc is not None
    try:
        with httpx.stream(
            "POST", f"{draining.url}/v1/chat/completions", json=body, headers=headers, timeout=60
        ) as response:
            lines = response.iter_lines()
            while '"content":"' not in (line := next(lines)) or '""' in line:
                pass
            draining.agent.proc.send_signal(signal.SIGTERM)
            draining.agent.wait_for("STOPPING=1")
            # New connections are refused soon after (liveness bound, not a speed claim)...
            deadline = time.monotonic() + 10
            while not _refused(f"{draining.url}/healthz"):
                assert time.monotonic() < deadline, "still accepting after SIGTERM"
                time.sleep(0.05)
            rest = list(lines)
        # ...while the stream already running goes on to its end.
        usage = json.loads(next(x for x in reversed(rest) if '"usage":{' in x)[6:])["usage"]
        assert usage["completion_tokens"] == 120
        assert [x for x in rest if x][-1] == "data: [DONE]"
        code, err = draining.agent.wait_exit()
        assert code == 0, err
    finally:
        draining.agent.close()
