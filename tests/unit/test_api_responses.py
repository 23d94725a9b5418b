"""The Responses API through the official OpenAI SDK, in process: every documented field,
the documented events, function calls, structured output, refusals that name the field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from edgecoder.inference.types import ChatRequest, Delta, ToolCall, Usage
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio

REPLY = "Hello from the script."
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}, "strict": True}  # fmt: skip
PARIS = ToolCall("call_a", "get_weather", '{"city": "Paris"}')
ROME = ToolCall("call_b", "get_weather", '{"city": "Rome"}')


@pytest.fixture
async def client(node: InProcessNode) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url="http://node/v1", api_key=node.admin_key, max_retries=0,
        http_client=httpx.AsyncClient(transport=node.transport()),
    ) as c:  # fmt: skip
        yield c


def asked(node: InProcessNode) -> ChatRequest:
    request = node.backend.requests[-1]
    assert isinstance(request, ChatRequest)
    return request


async def test_every_documented_field_is_accepted(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    response = await client.responses.create(
        model=MODEL,
        input=[{"role": "developer", "content": "Be brief."},
               {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Weather in Paris?"}]}],
        instructions="You are terse.",
        max_output_tokens=32,
        temperature=0.3,
        top_p=0.9,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="auto",
        parallel_tool_calls=True,
        max_tool_calls=4,
        text={"format": {"type": "text"}, "verbosity": "low"},
        reasoning={"effort": "low", "summary": "auto"},
        store=True,
        include=["reasoning.encrypted_content"],
        metadata={"ticket": "42"},
        truncation="auto",
        user="alice",
        safety_identifier="alice-hash",
        prompt_cache_key="session-1",
        service_tier="auto",
        top_logprobs=0,
        background=False,
        stream=False,
    )  # fmt: skip
    assert response.status == "completed"
    assert response.output_text == REPLY
    assert response.metadata == {"ticket": "42"}
    assert response.instructions == "You are terse."
    assert response.store is False  # nothing is kept here, and the answer says so
    assert (response.max_output_tokens, response.temperature, response.top_p) == (32, 0.3, 0.9)
    assert [t.name for t in response.tools] == ["get_weather"]  # type: ignore[union-attr]
    request = asked(node)
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "You are terse."),
        ("system", "Be brief."),
        ("user", "Weather in Paris?"),
    ]
    assert (request.sampling.max_tokens, request.tool_choice) == (32, "auto")
    assert request.json_schema is None


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"background": True}, "background"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "function", "name": "nope"}, "tools": [WEATHER]}, "tool_choice"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
         "input[0].content[0]"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ],
)  # fmt: skip
async def test_what_cannot_be_done_is_a_400_naming_the_field(
    node: InProcessNode, extra: dict[str, Any], param: str
) -> None:
    async with node.client() as http:
        response = await http.post("/v1/responses", json={"model": MODEL, "input": "Hi", **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert "Extra inputs" not in error["message"]


async def test_function_calls_as_output_items(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    node.backend.tool_calls = (PARIS, ROME)
    response = await client.responses.create(
        model=MODEL, input="Weather in Paris and Rome?", tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    )  # fmt: skip
    kinds = [item.type for item in response.output]
    assert kinds == ["message", "function_call", "function_call"]
    calls = [item for item in response.output if item.type == "function_call"]
    made = [(c.call_id, c.name, json.loads(c.arguments)) for c in calls]  # type: ignore[union-attr]
    assert made == [
        ("call_a", "get_weather", {"city": "Paris"}),
        ("call_b", "get_weather", {"city": "Rome"}),
    ]
    assert asked(node).tool_choice == "get_weather"
    node.backend.tool_calls = ()
    follow = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        *[c.model_dump(exclude_none=True) for c in calls],
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_b", "output": [
            {"type": "input_text", "text": "rain"}]},
    ]  # fmt: skip
    await client.responses.create(model=MODEL, input=follow, tools=[WEATHER])  # type: ignore[arg-type, list-item]
    history = asked(node).messages
    assert [m.role for m in history] == ["user", "assistant", "tool", "tool"]
    assert history[1].tool_calls == (PARIS, ROME)
    assert [(m.tool_call_id, m.content) for m in history[2:]] == [
        ("call_a", "sunny"), ("call_b", "rain")]  # fmt: skip


async def test_the_stream_has_the_documented_events(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    node.backend.deltas = (
        Delta(text="Checking"), Delta(text=" now."),
        Delta(tool_calls=(PARIS,)), Delta(tool_calls=(ROME,)),
        Delta(finish_reason="tool_calls", usage=Usage(7, 20)),
    )  # fmt: skip
    stream = await client.responses.create(
        model=MODEL,
        input="Weather?",
        tools=[WEATHER],
        stream=True,  # type: ignore[list-item]
    )
    events = [e async for e in stream]
    assert [e.type for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(len(events)))
    indexes = [e.output_index for e in events if e.type == "response.output_item.added"]  # type: ignore[union-attr]
    assert indexes == [0, 1, 2]
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "Checking now."
    assert [item.type for item in final.output] == ["message", "function_call", "function_call"]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 20)


async def test_the_sdks_stream_helper_and_the_token_limit(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    async with client.responses.stream(model=MODEL, input="Hi") as stream:
        texts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(texts) == final.output_text == REPLY
    async with client.responses.stream(model=MODEL, input="Hi", max_output_tokens=2) as stream:
        events = [e async for e in stream]
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"


async def test_structured_output_reaches_the_backend_as_a_schema(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"], "additionalProperties": False}  # fmt: skip
    response = await client.responses.create(
        model=MODEL, input="2+2?",
        text={"format": {"type": "json_schema", "name": "sum", "schema": schema, "strict": True}},
    )  # fmt: skip
    assert asked(node).json_schema == schema
    assert response.text is not None
    assert response.text.format.type == "json_schema"
    await client.responses.create(
        model=MODEL, input="JSON!", text={"format": {"type": "json_object"}}
    )
    assert asked(node).json_schema == {"type": "object"}


async def test_an_error_mid_stream_fails_the_response(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    node.backend.fail_after = 2
    stream = await client.responses.create(model=MODEL, input="Hi", stream=True)
    events = [e async for e in stream]
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed"
    assert failed.error is not None
    assert "died mid-stream" in failed.error.message


async def test_function_call_arguments_stream_as_written(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    node.backend.deltas = (
        Delta(tool_call_start=ToolCall("call_a", "get_weather", "")),
        Delta(tool_call_text='{"city": '),
        Delta(tool_call_text='"Paris"}'),
        Delta(tool_calls=(PARIS,)),
        Delta(finish_reason="tool_calls", usage=Usage(4, 9)),
    )
    stream = await client.responses.create(
        model=MODEL,
        input="Weather?",
        tools=[WEATHER],
        stream=True,  # type: ignore[list-item]
    )
    events = [e async for e in stream]
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]  # type: ignore[union-attr]
    assert deltas == ['{"city": ', '"Paris"}']
    final = events[-1].response  # type: ignore[union-attr]
    assert [(i.type, i.call_id) for i in final.output] == [("function_call", "call_a")]  # type: ignore[union-attr]
