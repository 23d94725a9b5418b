"""Ollama request bodies: chat, generate (raw, templated, FIM, load-only), embed."""

from __future__ import annotations

import pytest

from edgecoder.adapters.web.ollama_parse import parse_chat, parse_embed, parse_generate
from edgecoder.adapters.web.requests import Fields
from edgecoder.errors import BadRequestError


def test_chat_streams_by_default_and_maps_options() -> None:
    parsed = parse_chat(
        Fields(
            {
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "options": {"num_predict": -1, "temperature": 0.1, "stop": ["x"], "num_ctx": 99},
                "keep_alive": "5m",
            }
        )
    )
    assert parsed.stream is True
    request = parsed.request
    assert request.sampling.max_tokens is None  # -1: up to the context
    assert request.sampling.stop == ("x",)


def test_tool_call_arguments_as_objects() -> None:
    request = parse_chat(
        Fields(
            {
                "model": "m",
                "stream": False,
                "messages": [
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"function": {"name": "f", "arguments": {"a": 1}}}]},
                ],
            }
        )
    ).request  # fmt: skip
    assert request.messages[0].tool_calls[0].arguments == '{"a": 1}'


def test_generate_variants() -> None:
    assert parse_generate(Fields({"model": "m"})).load_only
    raw = parse_generate(Fields({"model": "m", "prompt": "x", "raw": True}))
    assert raw.completion is not None
    assert raw.chat is None
    fim = parse_generate(Fields({"model": "m", "prompt": "a", "suffix": "b"}))
    assert fim.completion is not None
    assert fim.completion.suffix == "b"
    templated = parse_generate(Fields({"model": "m", "prompt": "q", "system": "s"}))
    assert templated.chat is not None
    assert [m.role for m in templated.chat.messages] == ["system", "user"]


def test_images_are_refused() -> None:
    with pytest.raises(BadRequestError, match="text only"):
        parse_generate(Fields({"model": "m", "prompt": "x", "images": ["aGk="]}))


def test_embed_accepts_input_or_legacy_prompt() -> None:
    assert parse_embed(Fields({"model": "m", "input": ["a"]})).inputs == ("a",)
    assert parse_embed(Fields({"model": "m", "prompt": "a"})).inputs == ("a",)
