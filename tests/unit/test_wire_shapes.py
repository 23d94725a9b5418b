"""Our frames have exactly the keys and nesting of OpenAI's and Ollama's own responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgecoder.adapters.web.dialects import OLLAMA, OPENAI
from edgecoder.adapters.web.parsed import ParsedChat, ParsedCompletion
from edgecoder.adapters.web.requests import Fields
from edgecoder.inference.types import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    Delta,
    ModelInfo,
    Usage,
)

SHAPES = json.loads((Path(__file__).parent.parent / "fixtures" / "wire_shapes.json").read_text())


def shape(value: Any) -> Any:
    """Keys and nesting, with values replaced by their JSON type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__ if value is not None else "null"


async def deltas() -> AsyncIterator[Delta]:
    yield Delta(text="Hel")
    yield Delta(text="lo")
    yield Delta(finish_reason="stop", usage=Usage(3, 2))


def _sse(frames: list[bytes]) -> list[Any]:
    return [json.loads(f[6:]) for f in frames if f.startswith(b"data: {")]


def chat(include_usage: bool = False) -> ParsedChat:
    return ParsedChat(ChatRequest("m", (ChatMessage("user", "hi"),)), True, include_usage)


@pytest.mark.anyio
async def test_openai_chat_chunks_match_openai() -> None:
    frames = [f async for f in OPENAI.chat_answer(chat()).frames(deltas())]
    assert frames[-1] == b"data: [DONE]\n\n"
    chunks = _sse(frames)
    assert shape(chunks[0]) == shape(SHAPES["openai_chat_chunk_first"])
    assert shape(chunks[1]) == shape(SHAPES["openai_chat_chunk_content"])
    assert shape(chunks[-1]) == shape(SHAPES["openai_chat_chunk_final"])


@pytest.mark.anyio
async def test_openai_usage_chunk_matches_openai() -> None:
    frames = [f async for f in OPENAI.chat_answer(chat(True)).frames(deltas())]
    chunks = _sse(frames)
    assert shape(chunks[-1]) == shape(SHAPES["openai_chat_chunk_usage"])
    # With include_usage, OpenAI sends "usage": null on every other chunk.
    assert all(c["usage"] is None for c in chunks[:-1])


@pytest.mark.anyio
async def test_openai_completion_chunks_match_openai() -> None:
    parsed = ParsedCompletion(CompletionRequest("m", "def f("), True, False, False)
    frames = [f async for f in OPENAI.completion_answer(parsed).frames(deltas())]
    chunks = _sse(frames)
    assert shape(chunks[0]) == shape(SHAPES["openai_completion_chunk"])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.anyio
@pytest.mark.parametrize(("route", "line", "final"), [
    ("chat", "ollama_chat_line", "ollama_chat_final"),
    ("generate", "ollama_generate_line", None),
])  # fmt: skip
async def test_ollama_lines_match_ollama(route: str, line: str, final: str | None) -> None:
    if route == "chat":
        answer = OLLAMA.chat_answer(chat())
    else:
        parsed = OLLAMA.parse_generate(Fields({"model": "m", "prompt": "x"}))
        answer = OLLAMA.generate_answer(parsed)
    lines = [json.loads(x) async for x in answer.frames(deltas())]
    assert shape(lines[0]) == shape(SHAPES[line])
    assert lines[-1]["done"] is True
    if final is not None:
        assert shape(lines[-1]) == shape(SHAPES[final])


def test_ollama_tag_matches_ollama() -> None:
    info = ModelInfo(
        name="gemma3:270m", backend="llamacpp", context_length=8192, size_bytes=1, digest="ab",
        family="gemma3", parameter_size="270M", quantization="Q4_K_M", modified_ms=1,
    )  # fmt: skip
    assert shape(OLLAMA.tag(info)) == shape(SHAPES["ollama_tag"])
