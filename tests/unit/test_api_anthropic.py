"""The Anthropic Messages API through the official ``anthropic`` SDK, in process.

The SDK talks to the real Starlette app through ``httpx2.ASGITransport`` (the SDK's own
HTTP client); the scripted backend says a known reply, one word per token, or scripted
tool calls. Claude Code's request shapes (its billing line, its tools, its headers) are
replayed as it sends them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from unittest.mock import ANY

import anthropic
import httpx2
import pytest

from edgecoder.errors import OverloadedError
from edgecoder.inference.types import ChatRequest, Delta, ToolCall, Usage
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio

REPLY = "Hello from the script."
HI = [{"role": "user", "content": "Hi there"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def sdk(
    node: InProcessNode, key: str | None = None, address: str = "127.0.0.1"
) -> anthropic.AsyncAnthropic:
    """The SDK's async client of ``node`` (it sends the key as ``x-api-key``)."""
    transport = httpx2.ASGITransport(app=node.client_app, client=(address, 50000))
    return anthropic.AsyncAnthropic(
        base_url="http://node",
        api_key=key or node.admin_key,
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )


@pytest.fixture
async def client(node: InProcessNode) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with sdk(node) as c:
        yield c


def asked(node: InProcessNode) -> ChatRequest:
    request = node.backend.requests[-1]
    assert isinstance(request, ChatRequest)
    return request


async def test_a_whole_message(client: anthropic.AsyncAnthropic, node: InProcessNode) -> None:
    # This SDK has no sampling arguments any more; the API still takes them.
    message = await client.messages.create(
        model=MODEL, max_tokens=64, messages=HI, system="Be brief.", stop_sequences=["END"],
        metadata={"user_id": "u1"}, extra_body={"temperature": 0.5, "top_k": 20},
    )  # fmt: skip
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == REPLY  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 4)
    request = asked(node)
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."), ("user", "Hi there")]  # fmt: skip
    sampling = request.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.top_k, sampling.stop) == (
        64, 0.5, 20, ("END",))  # fmt: skip


async def test_max_tokens_is_stop_reason_max_tokens(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(model=MODEL, max_tokens=2, messages=HI)
    assert message.stop_reason == "max_tokens"
    assert message.content[0].text == "Hello from"  # type: ignore[union-attr]


async def test_the_stream_has_the_exact_event_sequence(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        kinds = [event.type async for event in stream if event.type != "text"]
        final = await stream.get_final_message()
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert final.content[0].text == REPLY  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2, 4)


async def test_the_raw_stream_pings_after_the_first_block(node: InProcessNode) -> None:
    async with node.client() as http:
        body = {"model": MODEL, "max_tokens": 8, "messages": HI, "stream": True}
        response = await http.post("/v1/messages", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in response.text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    for lines in events:  # every event names itself in its data too
        assert json.loads(lines[1].removeprefix("data: "))["type"] == lines[0][7:]


async def test_tool_use_round_trip(client: anthropic.AsyncAnthropic, node: InProcessNode) -> None:
    node.backend.reply = "Let me look."
    node.backend.tool_calls = (ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),)
    message = await client.messages.create(
        model=MODEL, max_tokens=64, tools=[WEATHER], messages=[  # type: ignore[list-item]
            {"role": "user", "content": "Weather in Paris?"}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )  # fmt: skip
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    use = message.content[1]
    assert use.type == "tool_use"
    assert (use.id, use.name, use.input) == ("toolu_1", "get_weather", {"city": "Paris"})
    request = asked(node)
    assert request.tool_choice == "required"
    assert request.parallel_tool_calls is False
    assert request.tools[0].parameters == WEATHER["input_schema"]

    node.backend.tool_calls = ()
    node.backend.reply = "It is sunny."
    answer = await client.messages.create(
        model=MODEL, max_tokens=64, tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": message.content},  # type: ignore[typeddict-item]
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21 C"},
                {"type": "text", "text": "Thanks."}]},
        ],
    )  # fmt: skip
    assert answer.content[0].text == "It is sunny."  # type: ignore[union-attr]
    history = asked(node).messages
    assert [m.role for m in history] == ["user", "assistant", "tool", "user"]
    assert history[1].tool_calls == (ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),)
    assert (history[2].tool_call_id, history[2].content) == ("toolu_1", "sunny, 21 C")


async def test_streamed_tool_use_with_input_json_delta(
    client: anthropic.AsyncAnthropic, node: InProcessNode
) -> None:
    node.backend.deltas = (
        Delta(tool_calls=(ToolCall("toolu_a", "get_weather", '{"city": "Oslo"}'),)),
        Delta(tool_calls=(ToolCall("toolu_b", "get_weather", '{"city": "Rome"}'),)),
        Delta(finish_reason="tool_calls", usage=Usage(9, 12)),
    )
    async with client.messages.stream(
        model=MODEL,
        max_tokens=64,
        tools=[WEATHER],
        messages=HI,  # type: ignore[list-item]
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_message()
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert [d.type for d in deltas] == ["input_json_delta", "input_json_delta"]
    starts = [e for e in events if e.type == "content_block_start"]
    assert [(e.index, e.content_block.type) for e in starts] == [(0, "tool_use"), (1, "tool_use")]
    assert final.stop_reason == "tool_use"
    assert [(b.id, b.input) for b in final.content] == [  # type: ignore[union-attr]
        ("toolu_a", {"city": "Oslo"}), ("toolu_b", {"city": "Rome"})]  # fmt: skip
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 12)


async def test_count_tokens(client: anthropic.AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(
        model=MODEL, system="Be brief.", messages=[{"role": "user", "content": "one two three"}]
    )
    assert counted.input_tokens == 5


async def test_errors_have_anthropics_shape_and_status(
    client: anthropic.AsyncAnthropic, node: InProcessNode
) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.messages.create(model="no-such-model", max_tokens=8, messages=HI)
    body = missing.value.body
    assert isinstance(body, dict)
    assert body == {"type": "error", "error": {"type": "not_found_error", "message": ANY}}
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        await client.messages.create(model=MODEL, max_tokens=0, messages=HI)
    image = {"type": "base64", "media_type": "image/png", "data": "AA=="}
    with pytest.raises(anthropic.BadRequestError, match="read text only"):
        await client.messages.create(
            model=MODEL, max_tokens=8,
            messages=[{"role": "user", "content": [{"type": "image", "source": image}]}],  # type: ignore[typeddict-item]
        )  # fmt: skip
    node.backend.refuse = OverloadedError("every slot is busy")
    with pytest.raises(anthropic.InternalServerError) as busy:
        await client.messages.create(model=MODEL, max_tokens=8, messages=HI)
    assert busy.value.status_code == 529
    assert busy.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    node.backend.refuse = None
    async with sdk(node, key="ec_" + "B" * 43, address="10.9.0.1") as bad:
        with pytest.raises(anthropic.AuthenticationError) as denied:
            await bad.messages.create(model=MODEL, max_tokens=8, messages=HI)
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_an_error_mid_stream_is_an_error_event(
    client: anthropic.AsyncAnthropic, node: InProcessNode
) -> None:
    node.backend.fail_after = 2

    async def read() -> None:
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
            async for _ in stream:
                pass

    with pytest.raises(anthropic.APIStatusError, match="died mid-stream"):
        await read()


async def test_the_key_as_bearer_and_the_version_headers(node: InProcessNode) -> None:
    async with node.client() as http:  # Authorization: Bearer
        response = await http.post(
            "/v1/messages",
            json={"model": MODEL, "max_tokens": 8, "messages": HI},
            headers={"anthropic-version": "2023-06-01", "anthropic-beta": "anything-2099-01-01"},
        )
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == REPLY


async def test_claude_codes_request_shape(node: InProcessNode) -> None:
    """A turn as Claude Code sends it: billing line, cache_control, thinking, tools."""

    def body(nonce: str) -> dict[str, object]:
        return {
            "model": MODEL,
            "max_tokens": 32000,
            "stream": True,
            "system": [
                {"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.37.0d9; "
                                         f"cc_entrypoint=cli; cch={nonce};"},
                {"type": "text", "cache_control": {"type": "ephemeral"},
                 "text": "You are Claude Code, Anthropic's official CLI for Claude."},
                {"type": "text", "text": "Use the tools.", "cache_control": {"type": "ephemeral"}},
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>be careful</system-reminder>"},
                    {"type": "text", "text": "list the files",
                     "cache_control": {"type": "ephemeral"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_9", "name": "Bash",
                     "input": {"command": "ls"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_9", "is_error": False,
                     "content": [{"type": "text", "text": "a.py\nb.py"}]}]},
                # Claude Code 2.1 sends its environment notes as a system message here.
                {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
            ],
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "output_config": {"effort": "high"},
            "tools": [{"name": "Bash", "description": "Run a command",
                       "input_schema": {"type": "object",
                                        "properties": {"command": {"type": "string"}},
                                        "required": ["command"]}}],
            "tool_choice": {"type": "auto"},
            "thinking": {"type": "adaptive", "display": "omitted"},
            "metadata": {"user_id": '{"device_id":"d1","account_uuid":"","session_id":"s1"}'},
        }  # fmt: skip

    prompts = []
    async with node.client() as http:
        for nonce in ("fa690", "1c8b4"):
            response = await http.post(
                "/v1/messages?beta=true", json=body(nonce),
                headers={"x-api-key": node.admin_key, "anthropic-version": "2023-06-01",
                         "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"},
            )  # fmt: skip
            assert response.status_code == 200, response.text
            assert "event: message_stop" in response.text
            prompts.append(asked(node).messages)
    assert prompts[0] == prompts[1]  # the billing nonce is gone: the prompt is the same
    system, user, assistant, tool, environment = prompts[0]
    assert (environment.role, environment.content) == ("system", "# Environment")
    assert system.content == (
        "You are Claude Code, Anthropic's official CLI for Claude.\n\nUse the tools."
    )
    assert user.content == "<system-reminder>be careful</system-reminder>\n\nlist the files"
    assert assistant.tool_calls == (ToolCall("toolu_9", "Bash", '{"command": "ls"}'),)
    assert (tool.role, tool.content) == ("tool", "a.py\nb.py")
    assert asked(node).tools[0].name == "Bash"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 8, "messages": []}, "messages"),
        ({"messages": HI}, "max_tokens"),
        ({"max_tokens": 8, "messages": HI, "temperature": 1.5}, "temperature"),
        ({"max_tokens": 8, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}, "messages"),
        ({"max_tokens": 8, "messages": HI, "tools": [{"type": "web_search_20250305",
                                                      "name": "web_search"}]}, "tools[0].type"),
        ({"max_tokens": 8, "messages": HI, "tools": [WEATHER],
          "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
        ({"max_tokens": 8, "messages": HI, "mcp_servers": [{"type": "url", "url": "x"}]},
         "mcp_servers"),
    ],
)  # fmt: skip
async def test_bad_bodies_are_400_naming_the_field(
    node: InProcessNode, body: dict[str, object], param: str
) -> None:
    async with node.client() as http:
        response = await http.post("/v1/messages", json={"model": MODEL, **body})
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert param in error["error"]["message"]


async def test_a_stop_sequence_is_reported_as_such(
    client: anthropic.AsyncAnthropic, node: InProcessNode
) -> None:
    node.backend.deltas = (
        Delta(text="one two"),
        Delta(finish_reason="stop", usage=Usage(3, 2), stop_sequence="END"),
    )
    message = await client.messages.create(
        model=MODEL, max_tokens=64, messages=HI, stop_sequences=["END"]
    )
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")
    async with client.messages.stream(
        model=MODEL, max_tokens=64, messages=HI, stop_sequences=["END"]
    ) as stream:
        final = await stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")


async def test_tool_input_streams_as_the_model_writes_it(
    client: anthropic.AsyncAnthropic, node: InProcessNode
) -> None:
    node.backend.deltas = (
        Delta(text="Checking."),
        Delta(tool_call_start=ToolCall("toolu_a", "get_weather", "")),
        Delta(tool_call_text='{"city": '),
        Delta(tool_call_text='"Oslo"}'),
        Delta(tool_calls=(ToolCall("toolu_a", "get_weather", '{"city": "Oslo"}'),)),
        Delta(finish_reason="tool_calls", usage=Usage(3, 8)),
    )
    async with client.messages.stream(
        model=MODEL,
        max_tokens=64,
        tools=[WEATHER],
        messages=HI,  # type: ignore[list-item]
    ) as stream:
        events = [event async for event in stream if event.type != "text"]
        final = await stream.get_final_message()
    kinds = [e.type for e in events if e.type != "input_json"]
    assert kinds == [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    pieces = [d.partial_json for d in deltas if d.type == "input_json_delta"]
    assert pieces == ['{"city": ', '"Oslo"}']
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Oslo"}  # type: ignore[union-attr]
