"""Hostile bodies on every POST/PUT route of the client API: a 4xx in the dialect, never a 500.

Each route starts from a body it accepts; every value in it (at every depth) is then
replaced by each hostile value in turn — wrong types, lone surrogates, numbers no parser
should take — and whole bodies are replaced by what no JSON parser should accept. The
answer must be a success or a documented 4xx whose body is in the route's dialect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio

_TOOLS = [{"type": "function", "function": {"name": "f", "description": "d",
                                              "parameters": {"type": "object"}}}]  # fmt: skip
_OPTIONS = {"num_predict": 4, "temperature": 0.5, "stop": ["x"], "seed": 1}

ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/chat/completions", {
        "model": MODEL, "stream": False, "max_tokens": 8, "stop": ["\n\n"], "temperature": 0.2,
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "c1", "type": "function",
                          "function": {"name": "f", "arguments": "{}"}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "42"}],
        "tools": _TOOLS, "tool_choice": {"type": "function", "function": {"name": "f"}},
        "stream_options": {"include_usage": True},
    }),
    ("POST", "/v1/completions", {"model": MODEL, "prompt": "def f(", "suffix": "",
                                 "max_tokens": 4, "stop": ["\n"], "echo": False}),
    ("POST", "/v1/fim/completions", {"model": MODEL, "prompt": "a", "suffix": "b",
                                     "max_tokens": 4}),
    ("POST", "/v1/embeddings", {"model": MODEL, "input": ["a", "b"],
                                "encoding_format": "float"}),
    ("POST", "/v1/responses", {
        "model": MODEL, "instructions": "be brief", "max_output_tokens": 8,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
    }),
    ("POST", "/infill", {"model": MODEL, "input_prefix": "a", "input_suffix": "b",
                         "prompt": "", "n_predict": 4, "stop": ["x"]}),
    ("POST", "/api/chat", {
        "model": MODEL, "stream": False, "options": _OPTIONS, "tools": _TOOLS,
        "messages": [{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "", "tool_calls": [
                         {"function": {"name": "f", "arguments": {"a": 1}}}]},
                     {"role": "tool", "content": "1", "tool_name": "f"}],
    }),
    ("POST", "/api/generate", {"model": MODEL, "prompt": "hi", "system": "s",
                               "stream": False, "options": _OPTIONS}),
    ("POST", "/api/embed", {"model": MODEL, "input": ["a"]}),
    ("POST", "/api/embeddings", {"model": MODEL, "prompt": "a"}),
    ("POST", "/api/show", {"model": MODEL}),
    ("PUT", "/admin/models/default", {"model": MODEL}),
    ("PUT", "/admin/owner-busy", {"busy": False}),
    ("POST", "/admin/keys", {"name": "second", "admin": False}),
]  # fmt: skip

_RAW = "@@raw@@"
HOSTILE_VALUES: list[Any] = [
    [], {}, [[[]]], {"a": {"b": {}}}, None, True, -1, 0.5, "", "x",
    "\ud800", "a\udfffb",
    _RAW + "1" * 5000, _RAW + "1e999", _RAW + "-1e999", _RAW + "NaN", _RAW + "Infinity",
    _RAW + "9" * 25,
]  # fmt: skip
"""Values put in place of each field; ``_RAW`` ones are spliced in as JSON text."""

HOSTILE_BODIES: list[bytes] = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"model": ' + b"[" * 70 + b"]" * 70 + b"}",
    b"\xff\xfe{}",
    b'{"model": "\xc3\x28"}',
    b'"\\ud800"',
    b'{"model": "\\ud800"}',
    b"[]",
    b"1",
    b"",
    b"null",
    b"{",
    b'{"model": NaN}',
    b"\xef\xbb\xbf{}",
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (dict keys and list indexes)."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


def _replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def _encode(body: Any) -> bytes:
    text = json.dumps(body)  # ensure_ascii: a lone surrogate goes out as "\ud800"
    while f'"{_RAW}' in text:
        start = text.index(f'"{_RAW}')
        end = text.index('"', start + 1)
        text = text[:start] + text[start + 1 + len(_RAW) : end] + text[end + 1 :]
    return text.encode()


def _mutations(body: dict[str, Any]) -> Iterator[bytes]:
    for path in _paths(body):
        for value in HOSTILE_VALUES:
            yield _encode(_replaced(body, path, value))
    yield from HOSTILE_BODIES


def _check_answer(path: str, response: httpx.Response, sent: bytes) -> None:
    where = f"{path} answered {response.status_code} to {sent[:200]!r}"
    assert response.status_code < 500, where
    kind = response.headers.get("content-type", "")
    if response.status_code < 300 and not kind.startswith("application/json"):
        return  # a stream the mutation asked for ("stream": true)
    body = response.json()
    if response.status_code >= 400:
        assert response.status_code in {400, 404, 409, 413, 415, 422}, where
        if path.startswith("/api/"):
            assert isinstance(body["error"], str), where
        else:
            assert isinstance(body["error"]["message"], str), where
            assert body["error"]["type"] == "invalid_request_error", where


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[r[1] for r in ROUTES])
async def test_every_hostile_body_gets_a_4xx_in_the_dialect(
    node: InProcessNode, method: str, path: str, body: dict[str, Any]
) -> None:
    async with node.client() as client:
        baseline = await client.request(method, path, content=json.dumps(body))
        assert baseline.status_code < 300, baseline.text
        tried = 0
        for sent in _mutations(body):
            response = await client.request(method, path, content=sent)
            _check_answer(path, response, sent)
            tried += 1
    assert tried > len(HOSTILE_BODIES)


async def test_refusals_name_what_was_wrong(node: InProcessNode) -> None:
    cases = {
        b"[" * 1000 + b"]" * 1000: "nests deeper than 64",
        b'{"model": "\\ud800", "messages": []}': "lone UTF-16 surrogate",
        b'{"model": "m", "max_tokens": ' + b"1" * 5000 + b"}": "more than 20 digits",
        b'{"model": "m", "temperature": NaN}': "NaN is not a JSON number",
        b'{"model": "m", "temperature": 1e999}': "out of range",
        b'{"model": "\xff"}': "not UTF-8",
    }
    async with node.client() as client:
        for sent, expected in cases.items():
            response = await client.post("/v1/chat/completions", content=sent)
            assert response.status_code == 400
            assert expected in response.json()["error"]["message"]


async def test_typed_fields_refuse_a_list_or_object_where_text_belongs(
    node: InProcessNode,
) -> None:
    bodies = [
        ({"model": MODEL, "messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": {}}]}]},
         "messages[0].content[0].type"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}],
          "tool_choice": {"type": ["auto"]}}, "tool_choice"),
    ]  # fmt: skip
    async with node.client() as client:
        for body, param in bodies:
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == 400, response.text
            assert response.json()["error"]["param"] == param
        response = await client.post(
            "/api/chat", json={"model": MODEL, "messages": [{"role": {"a": 1}}]}
        )
        assert response.status_code == 400
        assert "role" in response.json()["error"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("messages", [{"role": "user", "content": "x"}] * 2049, "at most 2048"),
        ("tools", _TOOLS * 257, "at most 256"),
        ("stop", ["s"] * 17, "at most 16"),
        ("stop", ["s" * 257], "longer than 256"),
    ],
)
async def test_request_limits_are_refused_by_name(
    node: InProcessNode, field: str, value: Any, message: str
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], field: value}
    async with node.client() as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert response.json()["error"]["param"] == field


async def test_embedding_inputs_are_bounded_in_count(node: InProcessNode) -> None:
    async with node.client() as client:
        openai = await client.post("/v1/embeddings", json={"model": MODEL, "input": ["a"] * 513})
        ollama = await client.post("/api/embed", json={"model": MODEL, "input": ["a"] * 513})
    assert openai.status_code == 400
    assert "at most 512" in openai.json()["error"]["message"]
    assert ollama.status_code == 400
    assert "at most 512" in ollama.json()["error"]


@pytest.mark.parametrize("raw", ["²", "٣", "1" * 5000, "-1", "0", "1001", " 5"])
async def test_admin_numbers_take_ascii_digits_in_range_only(node: InProcessNode, raw: str) -> None:
    async with node.client() as client:
        response = await client.get("/admin/tasks", params={"limit": raw})
        job = await client.get(f"/admin/models/jobs/{raw}")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "limit"
    assert job.status_code in {400, 404}
