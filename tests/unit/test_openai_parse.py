"""OpenAI request bodies as real clients send them."""

from __future__ import annotations

from typing import Any

import pytest

from edgecoder.adapters.web.openai_parse import parse_chat, parse_completion, parse_embeddings
from edgecoder.adapters.web.requests import Fields
from edgecoder.errors import BadRequestError


def chat(body: dict[str, Any]) -> Any:
    return parse_chat(Fields(body))


def test_plain_chat() -> None:
    parsed = chat(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": 9,
            "stop": "##",
            "seed": 3,
            "temperature": 0.2,
            "top_p": 0.5,
        }
    )
    request = parsed.request
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[1].content == "ab"
    assert (parsed.stream, parsed.include_usage) == (True, True)
    assert request.sampling.max_tokens == 9
    assert request.sampling.stop == ("##",)
    assert (request.sampling.seed, request.sampling.temperature, request.sampling.top_p) == (
        3,
        0.2,
        0.5,
    )


def test_cursor_responses_shaped_body() -> None:
    parsed = chat(
        {
            "model": "m",
            "instructions": "sys",
            "input": [
                {"type": "reasoning", "summary": []},
                {"role": "user", "content": [{"type": "input_text", "text": "hi",
                                              "cache_control": {"type": "ephemeral"}}]},
            ],
            "include": ["reasoning.encrypted_content"],
            "reasoning": {"effort": "low"},
            "text": {"verbosity": "low"},
            "max_output_tokens": 5,
            "tool_choice": {"type": "function", "function": {"name": "grep"}},
            "tools": [{"type": "function", "name": "grep", "parameters": {"type": "object"}}],
        }
    )  # fmt: skip
    request = parsed.request
    assert [(m.role, m.content) for m in request.messages] == [("system", "sys"), ("user", "hi")]
    assert request.sampling.max_tokens == 5
    assert request.tool_choice == "grep"
    assert [t.name for t in request.tools] == ["grep"]


def test_tool_history_round_trips() -> None:
    request = chat(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "cold"},
            ],
        }
    ).request  # fmt: skip
    assistant = request.messages[1]
    assert assistant.content == ""
    assert assistant.tool_calls[0].name == "weather"
    assert request.messages[2].tool_call_id == "c1"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "x", "content": "y"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 3}, "n"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 2}, "top_p"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
         "max_tokens"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
         "stream"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": 4},
         "tool_choice"),
    ],
)  # fmt: skip
def test_bad_chat_bodies_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequestError) as error:
        chat(body)
    assert error.value.param == param


def test_completion_and_fim() -> None:
    parsed = parse_completion(
        Fields({"model": "m", "prompt": ["def f("], "suffix": "\n", "echo": True, "max_tokens": 4})
    )
    assert (parsed.request.prompt, parsed.request.suffix, parsed.echo) == ("def f(", "\n", True)
    with pytest.raises(BadRequestError):
        parse_completion(Fields({"model": "m", "prompt": ["a", "b"]}))


def test_embeddings() -> None:
    request, encoding, ids = parse_embeddings(Fields({"model": "m", "input": ["a", "b"]}))
    assert (request.inputs, encoding, ids) == (("a", "b"), "float", None)
    _, _, ids = parse_embeddings(Fields({"model": "m", "input": [1, 2]}))  # token ids
    assert ids == [[1, 2]]
    with pytest.raises(BadRequestError):
        parse_embeddings(Fields({"model": "m", "input": [1, "a"]}))
    with pytest.raises(BadRequestError):
        parse_embeddings(Fields({"model": "m", "input": "a", "encoding_format": "hex"}))
