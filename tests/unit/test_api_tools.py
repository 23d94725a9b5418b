"""Tool calls through the official OpenAI and Ollama clients, in process.

The scripted backend says which calls the model made; these tests check that each
dialect streams them as its clients read them (OpenAI ``delta.tool_calls`` fragments with
``index``, ``id``, name and arguments; Ollama ``message.tool_calls`` with arguments as
objects), that parallel calls keep their order and indexes, and that a conversation with
tool results reaches the backend whole. The real model's calls are checked in
``tests/integration/test_tool_grammar.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import ollama
import openai
import pytest

from edgecoder.inference.types import ChatRequest, Delta, ToolCall, Usage
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "read_file", "description": "Read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}},
]  # fmt: skip
PARIS = ToolCall("call_a", "get_weather", '{"city": "Paris"}')
NOTES = ToolCall("call_b", "read_file", '{"path": "notes.txt"}')
ASK = [{"role": "user", "content": "Weather in Paris? And read notes.txt."}]


@pytest.fixture
async def client(node: InProcessNode) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url="http://node/v1", api_key=node.admin_key, max_retries=0,
        http_client=httpx.AsyncClient(transport=node.transport()),
    ) as c:  # fmt: skip
        yield c


def script_parallel_calls(node: InProcessNode) -> None:
    node.backend.deltas = (
        Delta(text="Checking."),
        Delta(tool_calls=(PARIS,)),
        Delta(tool_calls=(NOTES,)),
        Delta(finish_reason="tool_calls", usage=Usage(12, 30)),
    )


async def test_streamed_parallel_calls_as_openai_fragments(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    script_parallel_calls(node)
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=TOOLS,
        stream=True,  # type: ignore[arg-type]
    )
    chunks = [c async for c in stream]
    fragments = [f for c in chunks for f in (c.choices[0].delta.tool_calls or [])]
    assert [(f.index, f.id, f.function.name if f.function else None) for f in fragments] == [
        (0, "call_a", "get_weather"), (0, None, None), (1, "call_b", "read_file"), (1, None, None)
    ]  # fmt: skip
    arguments = ["", "", ""]
    for fragment in fragments:
        assert fragment.function is not None
        arguments[fragment.index] += fragment.function.arguments or ""
    assert [json.loads(a) for a in arguments[:2]] == [{"city": "Paris"}, {"path": "notes.txt"}]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Checking."


async def test_the_sdks_stream_helper_assembles_the_calls(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    script_parallel_calls(node)
    async with client.chat.completions.stream(
        model=MODEL,
        messages=ASK,
        tools=TOOLS,  # type: ignore[arg-type]
    ) as stream:
        final = await stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Checking."
    calls = [(c.id, c.function.name, json.loads(c.function.arguments))  # type: ignore[union-attr]
             for c in message.tool_calls or []]  # fmt: skip
    assert calls == [("call_a", "get_weather", {"city": "Paris"}),
                     ("call_b", "read_file", {"path": "notes.txt"})]  # fmt: skip
    assert final.choices[0].finish_reason == "tool_calls"


async def test_a_tool_round_trip_reaches_the_backend_whole(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    node.backend.tool_calls = (PARIS,)
    first = await client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )  # fmt: skip
    asked = node.backend.requests[-1]
    assert isinstance(asked, ChatRequest)
    assert (asked.tool_choice, asked.parallel_tool_calls) == ("get_weather", False)
    assert [t.name for t in asked.tools] == ["get_weather", "read_file"]
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    node.backend.tool_calls = ()
    await client.chat.completions.create(
        model=MODEL, tools=TOOLS,  # type: ignore[arg-type]
        messages=[*ASK, message.model_dump(exclude_none=True),  # type: ignore[list-item]
                  {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}],
    )  # fmt: skip
    history = node.backend.requests[-1]
    assert isinstance(history, ChatRequest)
    assert [m.role for m in history.messages] == ["user", "assistant", "tool"]
    assert history.messages[1].tool_calls == (PARIS,)
    assert (history.messages[2].tool_call_id, history.messages[2].content) == ("call_a", "sunny")


async def test_tool_choice_and_tool_types_are_checked(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="not in 'tools'") as unknown:
        await client.chat.completions.create(
            model=MODEL, messages=ASK, tools=TOOLS,  # type: ignore[arg-type]
            tool_choice={"type": "function", "function": {"name": "delete_all"}},
        )  # fmt: skip
    assert unknown.value.param == "tool_choice"
    with pytest.raises(openai.BadRequestError, match="only function tools") as builtin:
        await client.chat.completions.create(
            model=MODEL,
            messages=ASK,
            tools=[{"type": "web_search"}],  # type: ignore[list-item]
        )
    assert builtin.value.param == "tools[0].type"


async def test_ollama_client_tool_calls_have_object_arguments(node: InProcessNode) -> None:
    client = ollama.AsyncClient(
        host="http://node", transport=node.transport(),
        headers={"Authorization": f"Bearer {node.admin_key}"},
    )  # fmt: skip
    script_parallel_calls(node)
    whole = await client.chat(model=MODEL, messages=ASK, tools=TOOLS, stream=False)
    calls = whole.message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("read_file", {"path": "notes.txt"})]  # fmt: skip
    assert whole.done_reason == "stop"  # Ollama's word for a turn that ends in calls
    script_parallel_calls(node)
    parts = [
        p async for p in await client.chat(model=MODEL, messages=ASK, tools=TOOLS, stream=True)
    ]
    streamed = [c for p in parts for c in (p.message.tool_calls or [])]
    assert [c.function.arguments for c in streamed] == [{"city": "Paris"}, {"path": "notes.txt"}]
    node.backend.deltas = None
    await client.chat(model=MODEL, tools=TOOLS, stream=False, messages=[
        *ASK, {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"}])  # fmt: skip
    history = node.backend.requests[-1]
    assert isinstance(history, ChatRequest)
    assert history.messages[1].tool_calls[0].arguments == '{"city": "Paris"}'
    assert (history.messages[2].role, history.messages[2].content) == ("tool", "sunny")


STREAMED = (
    Delta(tool_call_start=ToolCall("call_a", "get_weather", "")),
    Delta(tool_call_text='{"city": '),
    Delta(tool_call_text='"Paris"}'),
    Delta(tool_calls=(PARIS,)),
    Delta(tool_calls=(NOTES,)),  # whole, as a mesh peer relays it
    Delta(finish_reason="tool_calls", usage=Usage(5, 9)),
)


async def test_arguments_stream_as_the_model_writes_them(
    client: openai.AsyncOpenAI, node: InProcessNode
) -> None:
    node.backend.deltas = STREAMED
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=TOOLS,
        stream=True,  # type: ignore[arg-type]
    )
    fragments = [
        f for c in [c async for c in stream] for f in (c.choices[0].delta.tool_calls or [])
    ]
    assert [(f.index, f.id, f.function.arguments if f.function else None) for f in fragments] == [
        (0, "call_a", ""), (0, None, '{"city": '), (0, None, '"Paris"}'),
        (1, "call_b", ""), (1, None, '{"path": "notes.txt"}'),
    ]  # fmt: skip
    node.backend.deltas = STREAMED
    whole = await client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS)  # type: ignore[arg-type]
    calls = whole.choices[0].message.tool_calls or []
    assert [c.id for c in calls] == ["call_a", "call_b"]  # each call once
