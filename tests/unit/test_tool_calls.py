"""Tool calls in text: the syntaxes, the streaming scanner, and prompts for models without tools."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecoder.inference.tool_calls import (
    GENERIC,
    MISTRAL,
    ToolCallScanner,
    syntax_for_template,
)
from edgecoder.inference.tool_prompt import plain_messages, tool_instructions
from edgecoder.inference.types import ChatMessage, Delta, ToolCall, ToolSpec

WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
READ = '{"name": "read_file", "arguments": {"path": "a.py"}}'
TOOLS = ("get_weather", "read_file")


def scan(
    text: str, step: int, syntax: object = GENERIC, truncated: bool = False
) -> tuple[str, list[tuple[str, Any]]]:
    """The text shown and the calls made when ``text`` streams in pieces of ``step``."""
    shown, calls, _ = stream(text, step, syntax, truncated)
    return shown, [(c.name, json.loads(c.arguments)) for c in calls]


def stream(
    text: str, step: int, syntax: object = GENERIC, truncated: bool = False
) -> tuple[str, list[ToolCall], list[Delta]]:
    scanner = ToolCallScanner(syntax, TOOLS)  # type: ignore[arg-type]
    deltas: list[Delta] = []
    for i in range(0, len(text), step):
        deltas += scanner.feed(text[i : i + step])
    deltas += scanner.flush(truncated=truncated)
    calls = [c for d in deltas for c in d.tool_calls]
    return "".join(d.text for d in deltas), calls, deltas


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_calls_are_read_however_the_text_is_split(step: int) -> None:
    text = (
        f"Let me check.\n<tool_call>\n{WEATHER}\n</tool_call>\n<tool_call>\n{READ}\n</tool_call>\n"
    )
    shown, calls = scan(text, step)
    assert shown == "Let me check."
    assert calls == [("get_weather", {"city": "Paris"}), ("read_file", {"path": "a.py"})]


def test_text_streams_at_once_and_holds_back_only_a_possible_marker() -> None:
    scanner = ToolCallScanner(GENERIC, TOOLS)
    assert scanner.feed("Hello world") == [Delta(text="Hello world")]
    assert scanner.feed(" <tool") == []  # could be a call's opening
    assert scanner.feed("box>") == [Delta(text=" <toolbox>")]  # it was not
    assert scanner.flush() == []


def test_each_call_has_its_own_id() -> None:
    _, calls, _ = stream(f"<tool_call>{WEATHER}</tool_call><tool_call>{WEATHER}</tool_call>", 9)
    assert len({c.id for c in calls}) == 2
    assert all(c.id.startswith("call_") for c in calls)


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_a_call_is_announced_and_its_arguments_stream_as_written(step: int) -> None:
    arguments = '{\n  "path": "a.py",\n  "lines": [1, {"x": "}"}]\n}'
    body = f'<tool_call>\n{{"name": "read_file", "arguments": {arguments}}}\n</tool_call>'
    _, calls, deltas = stream(body, step)
    starts = [d.tool_call_start for d in deltas if d.tool_call_start]
    assert [(s.name, s.arguments) for s in starts] == [("read_file", "")]
    pieces = "".join(d.tool_call_text for d in deltas)
    assert pieces == arguments  # the call object's own brace and the layout stay out
    assert calls == [ToolCall(starts[0].id, "read_file", arguments)]
    order = [("start" if d.tool_call_start else "piece" if d.tool_call_text else "call")
             for d in deltas]  # fmt: skip
    assert order[0] == "start"
    assert order[-1] == "call"
    assert set(order[1:-1]) == {"piece"}


@pytest.mark.parametrize(
    "block",
    ["{not json}", '{"name": "rm_rf", "arguments": {}}', '{"name": "get_weather", "arguments": 3}',
     '["get_weather"]'],
)  # fmt: skip
def test_a_block_that_is_no_call_of_an_offered_tool_stays_text(block: str) -> None:
    text = f"Before <tool_call>{block}</tool_call> after"
    assert scan(text, 3) == (text, [])


def test_a_call_without_its_closing_marker_is_read_at_the_end() -> None:
    assert scan(f"<tool_call>\n{WEATHER}\n", 4) == ("", [("get_weather", {"city": "Paris"})])


def test_a_call_cut_by_the_token_limit_is_dropped_not_shown() -> None:
    text = f"<tool_call>\n{WEATHER}\n</tool_call>\n<tool_call>\n" + '{"name": "read_f'
    assert scan(text, 7, truncated=True) == ("", [("get_weather", {"city": "Paris"})])
    assert scan(text, 7)[0].startswith("<tool_call>")  # not cut: given back as text


def test_mistral_calls_are_one_array_to_the_end() -> None:
    text = f"[TOOL_CALLS][{WEATHER}, {READ}]"
    assert scan(text, 3, MISTRAL) == (
        "", [("get_weather", {"city": "Paris"}), ("read_file", {"path": "a.py"})])  # fmt: skip


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="<"), max_size=200),
       st.integers(min_value=1, max_value=20))  # fmt: skip
def test_text_without_markers_passes_through_unchanged(text: str, step: int) -> None:
    assert scan(text, step) == (text, [])


def test_the_syntax_comes_from_the_template() -> None:
    qwen = "{% if tools %}<tools>{{ tools | tojson }}</tools>{% endif %}<tool_call>"
    assert syntax_for_template(qwen).name == "hermes"
    assert syntax_for_template("{% for tool in tools %}[TOOL_CALLS]{% endfor %}").name == "mistral"
    assert syntax_for_template("{{ messages[0].content }}") is GENERIC


def test_plain_messages_write_calls_and_results_into_turns() -> None:
    messages = (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Weather in Paris and Rome?"),
        ChatMessage("assistant", "", (ToolCall("c1", "get_weather", '{"city": "Paris"}'),
                                      ToolCall("c2", "get_weather", '{"city": "Rome"}'))),
        ChatMessage("tool", "sunny", tool_call_id="c1"),
        ChatMessage("tool", "rain", tool_call_id="c2"),
    )  # fmt: skip
    tools = (ToolSpec("get_weather", "Weather in a city", {"type": "object"}),)
    out = plain_messages(messages, GENERIC, tool_instructions(tools, "required", GENERIC))
    assert [m.role for m in out] == ["system", "user", "assistant", "user"]
    assert out[0].content.startswith("Be brief.\n\nYou can call these tools:\n")
    assert '"name": "get_weather"' in out[0].content
    assert "You must call at least one of these tools now." in out[0].content
    assert out[2].content == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    )
    assert out[3].content == (
        "<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response>"
    )
    assert all(m.tool_calls == () for m in out)


def test_a_named_choice_is_said_in_the_instructions() -> None:
    tools = (ToolSpec("read_file", "", {}),)
    assert "You must call the tool read_file now." in tool_instructions(tools, "read_file", GENERIC)
    assert "answer directly" in tool_instructions(tools, "auto", GENERIC)
