"""Structured output in every dialect reaches the backend as one JSON schema (or none)."""

from __future__ import annotations

from typing import Any

import pytest

from edgecoder.inference.types import ChatRequest
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
HI = [{"role": "user", "content": "Count."}]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/chat/completions", {"messages": HI, "response_format": {"type": "json_schema",
         "json_schema": {"name": "n", "schema": SCHEMA, "strict": True}}}, SCHEMA),
        ("/v1/chat/completions", {"messages": HI, "response_format": {"type": "json_object"}},
         {"type": "object"}),
        ("/v1/chat/completions", {"messages": HI, "response_format": {"type": "text"}}, None),
        ("/api/chat", {"messages": HI, "format": "json", "stream": False}, {"type": "object"}),
        ("/api/chat", {"messages": HI, "format": SCHEMA, "stream": False}, SCHEMA),
        ("/api/generate", {"prompt": "Count.", "format": SCHEMA, "stream": False}, SCHEMA),
        ("/v1/messages", {"messages": HI, "max_tokens": 9, "output_config": {"format": {
         "type": "json_schema", "schema": SCHEMA}}}, SCHEMA),
        ("/v1/messages", {"messages": HI, "max_tokens": 9, "output_format": {
         "type": "json_schema", "schema": SCHEMA}}, SCHEMA),
    ],
)  # fmt: skip
async def test_each_dialects_json_format(
    node: InProcessNode, path: str, body: dict[str, Any], expected: object
) -> None:
    async with node.client() as http:
        response = await http.post(path, json={"model": MODEL, **body})
    assert response.status_code == 200, response.text
    asked = node.backend.requests[-1]
    assert isinstance(asked, ChatRequest)
    assert asked.json_schema == expected


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": HI, "response_format": {"type": "yaml"}},
         "response_format.type"),
        ("/v1/chat/completions", {"messages": HI, "response_format": {"type": "json_schema"}},
         "response_format.json_schema"),
        ("/api/chat", {"messages": HI, "format": "yaml"}, "format"),
        ("/api/generate", {"prompt": "x", "raw": True, "format": "json"}, "format"),
    ],
)  # fmt: skip
async def test_a_format_the_node_cannot_hold_is_refused(
    node: InProcessNode, path: str, body: dict[str, Any], param: str
) -> None:
    async with node.client() as http:
        response = await http.post(path, json={"model": MODEL, **body})
    assert response.status_code == 400
    error = response.json()["error"]
    if isinstance(error, dict):  # OpenAI's shape names the field in param
        assert error["param"] == param
    else:  # Ollama's is a message only
        assert f"'{param}'" in error
