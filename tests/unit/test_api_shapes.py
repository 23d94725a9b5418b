"""What clients parse, in process: response shapes, stream framing and errors of both dialects.

The scripted backend says a known reply one word per token, so every byte of a response
can be checked; the end-to-end versions on the real model stay in
``tests/integration/test_client_api.py``.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from edgecoder.errors import ContextOverflowError, OverloadedError
from edgecoder.inference.types import ToolCall
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio

REPLY = "Hello from the script."
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi there"}]}


def _sse(raw: bytes) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The JSON payloads of an SSE body (``data: {...}`` lines), and its raw events."""
    events = raw.split(b"\n\n")
    assert events[-1] == b""
    lines = [line for e in events[:-1] for line in e.split(b"\n")]
    payloads = [json.loads(line[len(b"data: ") :]) for line in lines
                if line.startswith(b"data: {")]  # fmt: skip
    return payloads, events[:-1]


async def test_openai_chat_answers_in_openai_s_shape(node: InProcessNode) -> None:
    async with node.client() as client:
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": REPLY,
                                            "refusal": None}}]  # fmt: skip
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert response.headers["x-edgecoder-node"] == node.services.node_id
    assert response.headers["server-timing"].startswith("backend;dur=")


async def test_openai_chat_stream_framing(node: InProcessNode) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with node.client() as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads, events = _sse(response.content)
    assert events[-1] == b"data: [DONE]"
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"}
    assert len({p["id"] for p in payloads}) == 1
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in payloads if p["choices"])
    assert text == REPLY
    assert [p["choices"][0]["finish_reason"] for p in payloads if p["choices"]][-1] == "stop"
    assert all(p["usage"] is None for p in payloads[:-1])
    assert payloads[-1]["choices"] == []
    assert payloads[-1]["usage"]["completion_tokens"] == 4


async def test_max_tokens_cuts_the_reply_with_finish_length(node: InProcessNode) -> None:
    async with node.client() as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2})
    choice = response.json()["choices"][0]
    assert choice["message"]["content"] == "Hello from"
    assert choice["finish_reason"] == "length"


async def test_tool_calls_in_both_dialects(node: InProcessNode) -> None:
    node.backend.tool_calls = (ToolCall("call_1", "read_file", '{"path": "a.py"}'),)
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {}}}]
    async with node.client() as client:
        openai = await client.post("/v1/chat/completions", json={**CHAT, "tools": tools})
        ollama = await client.post("/api/chat", json={**CHAT, "tools": tools, "stream": False})
    choice = openai.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "read_file", "arguments": '{"path": "a.py"}'}}]  # fmt: skip
    call = ollama.json()["message"]["tool_calls"][0]["function"]
    assert call == {"index": 0, "name": "read_file", "arguments": {"path": "a.py"}}  # an object


async def test_completions_echo_and_embeddings(node: InProcessNode) -> None:
    async with node.client() as client:
        completion = await client.post(
            "/v1/completions", json={"model": MODEL, "prompt": "def f(", "echo": True}
        )
        floats = await client.post("/v1/embeddings", json={"model": MODEL, "input": ["ab", "c"]})
        packed = await client.post("/v1/embeddings", json={
            "model": MODEL, "input": "ab", "encoding_format": "base64"})  # fmt: skip
    assert completion.json()["object"] == "text_completion"
    assert completion.json()["choices"][0]["text"] == "def f(" + REPLY
    data = floats.json()["data"]
    assert [d["embedding"] for d in data] == [[2.0, 1.0], [1.0, 1.0]]
    assert [d["index"] for d in data] == [0, 1]
    encoded = packed.json()["data"][0]["embedding"]
    assert list(struct.unpack("<2f", base64.b64decode(encoded))) == [2.0, 1.0]


async def test_ollama_chat_and_generate_framing(node: InProcessNode) -> None:
    async with node.client() as client:
        whole = await client.post("/api/chat", json={**CHAT, "stream": False})
        generate = {"model": MODEL, "prompt": "Once", "options": {"num_predict": 3}}
        streamed = await client.post("/api/generate", json=generate)
    assert whole.json()["message"] == {"role": "assistant", "content": REPLY}
    assert whole.json()["done"] is True
    assert whole.json()["eval_count"] == 4
    assert streamed.headers["content-type"] == "application/x-ndjson"
    lines = streamed.content.split(b"\n")
    assert lines[-1] == b""
    objects = [json.loads(line) for line in lines[:-1]]
    assert all(o["done"] is False for o in objects[:-1])
    assert "".join(o["response"] for o in objects) == "Hello from the"
    assert objects[-1]["done"] is True
    assert objects[-1]["done_reason"] == "length"
    assert objects[-1]["eval_count"] == 3


@pytest.mark.parametrize(
    ("refusal", "status", "code", "retry_after"),
    [
        (ContextOverflowError("the prompt has 9000 tokens", prompt_tokens=9000,
                              context_length=4096), 400, "context_length_exceeded", None),
        (OverloadedError("every slot is busy and the queue is full"), 503, "overloaded", "1"),
    ],
)  # fmt: skip
async def test_refusals_before_admission_get_their_status_in_both_dialects(
    node: InProcessNode, refusal: Exception, status: int, code: str, retry_after: str | None
) -> None:
    node.backend.refuse = refusal
    async with node.client() as client:
        openai = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        ollama = await client.post("/api/chat", json=CHAT)
    assert openai.status_code == status
    assert openai.json()["error"]["code"] == code
    assert openai.headers.get("retry-after") == retry_after
    assert ollama.status_code == status
    assert ollama.json() == {"error": str(refusal)}


async def test_an_error_after_the_stream_began_is_its_last_event(node: InProcessNode) -> None:
    node.backend.fail_after = 2
    async with node.client() as client:
        openai = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        ollama = await client.post("/api/chat", json=CHAT)
    assert openai.status_code == 200
    payloads, events = _sse(openai.content)
    assert events[-1] == b"data: [DONE]"
    assert payloads[-1]["error"]["message"] == "the scripted backend died mid-stream"
    assert payloads[-1]["error"]["code"] == "backend_unavailable"
    last = json.loads(ollama.content.split(b"\n")[-2])
    assert last == {"error": "the scripted backend died mid-stream"}


async def test_responses_api_event_sequence(node: InProcessNode) -> None:
    body = {"model": MODEL, "input": "Hi there", "stream": True}
    async with node.client() as client:
        response = await client.post("/v1/responses", json=body)
    payloads, events = _sse(response.content)
    assert all(e.startswith(b"event: " + p["type"].encode() + b"\n") for e, p in
               zip(events, payloads, strict=True))  # fmt: skip
    kinds = [p["type"] for p in payloads]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    deltas = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    assert deltas == REPLY
    assert payloads[-1]["response"]["output"][0]["content"][0]["text"] == REPLY
