"""The client API with the real Gemma 270M model, through the official OpenAI and Ollama clients.

End to end, a few: a streamed and a whole chat per dialect, embeddings, what only the
real model shows (calibration, seeds, fill-in-the-middle, its own refusals, a cancelled
stream freeing its slot) and a drain on SIGTERM. Shapes, errors, auth and framing are
tested in process on the scripted backend (``tests/unit/test_api_*.py``).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.integration.nodes import ModelNode

pytestmark = [pytest.mark.integration, pytest.mark.model]

MODEL = "gemma3:270m"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelNode]:
    running = ModelNode(
        tmp_path_factory.mktemp("node"), "[inference]\ncontext_length = 2048\n", calibrate=True
    )
    yield running
    running.stop()


@pytest.fixture
def client(node: ModelNode) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{node.url}/v1", api_key=node.key, max_retries=0) as c:
        yield c


def test_calibration_measures_the_model_and_the_advert_says_so(node: ModelNode) -> None:
    deadline = time.monotonic() + 120
    advert: dict[str, Any] = {}
    while time.monotonic() < deadline:
        advert = node.agent.get(f"{node.url}/healthz")[1]["mesh"]["advert"] or {}
        if advert.get("decode_tps"):
            break
        time.sleep(0.5)
    assert advert["decode_tps"] > 0
    assert advert["prefill_tps"] > 0
    assert advert["backend"] == "llamacpp"
    assert [(m["name"], m["size_class"]) for m in advert["models"]] == [("gemma3:270m", "xs")]


def test_streamed_chat_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Write a haiku about code."}],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=12,
            seed=7,
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["length"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens > 5
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_with_array_content_names_the_serving_node(
    client: openai.OpenAI, node: ModelNode
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Name a color."}]},
        ],
        max_completion_tokens=5,
        temperature=0,
    )
    assert raw.headers["x-edgecoder-node"] == node.node_id
    timing = dict(part.strip().split(";dur=") for part in raw.headers["server-timing"].split(","))
    assert 0 < float(timing["backend"]) <= float(timing["node"])
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 5
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_same_seed_same_answer(client: openai.OpenAI) -> None:
    def ask() -> str:
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=10,
            seed=42,
            temperature=0.9,
        )
        return reply.choices[0].message.content or ""

    assert ask() == ask()


def test_completion_with_suffix(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL,
        prompt="def add(a, b):\n    ",
        suffix="\n\nprint(add(1, 2))\n",
        max_tokens=16,
        temperature=0,
    )
    assert completion.object == "text_completion"
    assert "print(add(1, 2))" not in completion.choices[0].text
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 16


def test_embeddings(client: openai.OpenAI) -> None:
    # The SDK asks for base64 itself and decodes it.
    result = client.embeddings.create(model=MODEL, input=["def f(): pass", "hello"])
    assert [d.index for d in result.data] == [0, 1]
    vectors = [d.embedding for d in result.data]
    assert len(vectors[0]) == 640
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3
    assert vectors[0] != vectors[1]
    assert result.usage.prompt_tokens > 0


def test_a_prompt_too_long_is_refused_and_output_too_long_is_cut(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="context") as too_long:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "word " * 5000}]
        )
    assert too_long.value.code == "context_length_exceeded"
    # More output than the context leaves is cut where the context ends, as llama-server does.
    cut = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "7 " * 1000}], max_tokens=4000,
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None
    assert cut.usage.total_tokens == 2048


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                   "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 30},
                                  "unit": {"enum": ["celsius", "fahrenheit"]}}}}}  # fmt: skip


def test_a_grammar_constrained_tool_call_streams_through_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True, max_tokens=120, seed=7,
    )  # fmt: skip
    chunks = list(stream)
    fragments = [f for c in chunks for f in (c.choices[0].delta.tool_calls or [])]
    assert fragments[0].index == 0
    assert fragments[0].id
    assert fragments[0].function is not None
    assert fragments[0].function.name == "get_weather"
    arguments = json.loads("".join(f.function.arguments or "" for f in fragments if f.function))
    assert set(arguments) == {"city", "unit"}
    assert 1 <= len(arguments["city"]) <= 30
    assert arguments["unit"] in {"celsius", "fahrenheit"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_anthropic_sdk_gets_a_valid_tool_use_from_the_model(node: ModelNode) -> None:
    import anthropic

    schema = WEATHER_TOOL["function"]["parameters"]  # type: ignore[index]
    with anthropic.Anthropic(base_url=node.url, api_key=node.key, max_retries=0) as client:
        message = client.messages.create(
            model=MODEL, max_tokens=120, tools=[{"name": "get_weather", "input_schema": schema,
                                                 "description": "The weather in a city"}],
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        )  # fmt: skip
    assert message.stop_reason == "tool_use"
    uses = [block for block in message.content if block.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert set(uses[0].input) == {"city", "unit"}  # type: ignore[arg-type]
    assert uses[0].input["unit"] in {"celsius", "fahrenheit"}  # type: ignore[index]


def test_the_model_reports_its_capabilities(node: ModelNode) -> None:
    with ollama.Client(host=f"{node.url}/k/{node.key}") as client:
        shown = client.show(MODEL)
    assert shown.capabilities == ["completion", "tools", "embedding"]
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.parameter_count"] == 268_098_176


def test_ollama_client_chats_streamed_and_whole(node: ModelNode) -> None:
    # VS Code Copilot's Ollama provider takes a URL only: the key rides in the path.
    with ollama.Client(host=f"{node.url}/k/{node.key}") as client:
        parts = list(
            client.chat(
                MODEL,
                [{"role": "user", "content": "Hello"}],
                stream=True,
                options={"num_predict": 6, "seed": 1},
            )
        )
        assert parts[-1].done
        assert parts[-1].eval_count == 6
        assert "".join(p.message.content or "" for p in parts)
        whole = client.chat(MODEL, [{"role": "user", "content": "Hi"}], options={"num_predict": 4})
        assert whole.done
        assert whole.message.role == "assistant"
        assert whole.eval_count is not None
        assert 0 < whole.eval_count <= 4


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelNode]:
    config = "[inference]\ncontext_length = 2048\nmax_queue = 0\n"
    running = ModelNode(tmp_path_factory.mktemp("tight"), config)
    yield running
    running.stop()


def _stream_until_first_token(node: ModelNode, max_tokens: int) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell a long story."}],
            "stream": True, "max_tokens": max_tokens, "ignore_eos": True}  # fmt: skip
    headers = {"Authorization": f"Bearer {node.key}"}
    with httpx.stream(
        "POST", f"{node.url}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # leave mid-stream: the connection closes here


def test_disconnect_mid_stream_frees_the_slot(tight: ModelNode) -> None:
    headers = {"Authorization": f"Bearer {tight.key}"}
    small = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    # The abandoned generation would hold the only slot for 1500 tokens (~40 s) if not
    # cancelled, longer than the deadline below.
    _stream_until_first_token(tight, max_tokens=1500)
    # A liveness bound, not a speed claim: a leaked slot would stay busy far longer.
    deadline = time.monotonic() + 30.0
    status = 0
    while time.monotonic() < deadline:
        status = httpx.post(
            f"{tight.url}/v1/chat/completions", json=small, headers=headers, timeout=60
        ).status_code
        if status == 200:
            break
        assert status == 503
    assert status == 200


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=5)
    except httpx.ConnectError:
        return True
    return False


TOKENS = 40
"""The stream a SIGTERM arrives in the middle of."""


def test_sigterm_lets_an_in_flight_stream_finish(tmp_path: Path) -> None:
    # The grace is the longest there is: a busy machine may decode a token a second (the
    # model runs below everything else), and the test is about order, not speed.
    draining = ModelNode(tmp_path, "[daemon]\nshutdown_timeout_s = 3600\n")
    headers = {"Authorization": f"Bearer {draining.key}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Go on."}],
            "stream": True, "max_tokens": TOKENS, "ignore_eos": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    assert draining.agent.proc is not None
    try:
        with httpx.stream(
            "POST", f"{draining.url}/v1/chat/completions", json=body, headers=headers, timeout=300
        ) as response:
            lines = response.iter_lines()
            while '"content":"' not in (line := next(lines)) or '""' in line:
                pass
            draining.agent.proc.send_signal(signal.SIGTERM)
            draining.agent.wait_for("STOPPING=1")
            # New connections are refused soon after (liveness bound, not a speed claim)...
            deadline = time.monotonic() + 10
            while not _refused(f"{draining.url}/healthz"):
                assert time.monotonic() < deadline, "still accepting after SIGTERM"
                time.sleep(0.05)
            rest = list(lines)
        # ...while the stream already running goes on to its end.
        usage = json.loads(next(x for x in reversed(rest) if '"usage":{' in x)[6:])["usage"]
        assert usage["completion_tokens"] == TOKENS
        assert [x for x in rest if x][-1] == "data: [DONE]"
        code, err = draining.agent.wait_exit()
        assert code == 0, err
    finally:
        draining.agent.close()
