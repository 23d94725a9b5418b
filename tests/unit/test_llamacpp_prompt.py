"""How a chat with tools is put to an embedded model: its template's syntax, or the generic one."""

from __future__ import annotations

import pytest

from edgecoder.adapters.backends.llamacpp_prompt import plan_chat
from edgecoder.errors import BadRequestError
from edgecoder.inference.types import ChatMessage, ChatRequest, ToolCall, ToolSpec
from edgecoder.storage.models import ModelEntry

# A template in the style of Qwen's: tools in the system turn, calls as <tool_call> blocks,
# results in <tool_response> blocks, written for this test.
HERMES_TEMPLATE = """
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>
Call a function with <tool_call>{"name": ..., "arguments": ...}</tool_call>.<|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' %}<|im_start|>user
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}<|im_start|>assistant
{{ message.content }}
{%- for call in message.tool_calls or [] %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = ToolSpec("get_weather", "Weather <now> & later", CITY)
HISTORY = (
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "Weather in Paris?"),
    ChatMessage("assistant", "", (ToolCall("c1", "get_weather", '{"city": "Paris"}'),)),
    ChatMessage("tool", "sunny", tool_call_id="c1"),
)


def entry(template: str = "", architecture: str = "gemma3") -> ModelEntry:
    return ModelEntry("m", "m.gguf", "0" * 64, 1, architecture, 2048, "1B", "Q4_K_M", template,
                      "", 0)  # fmt: skip


def test_a_hermes_template_renders_the_tools_and_calls_itself() -> None:
    plan = plan_chat(entry(HERMES_TEMPLATE), ChatRequest("m", HISTORY, tools=(WEATHER,)))
    assert plan.syntax.name == "hermes"
    assert plan.tools == ("get_weather",)
    assert '"description": "Weather <now> & later"' in plan.prompt  # tojson without HTML escapes
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}' in plan.prompt
    assert "<tool_response>\nsunny\n</tool_response>" in plan.prompt
    assert plan.prompt.endswith("<|im_start|>assistant\n")
    assert plan.constraint is not None
    assert plan.constraint.trigger == "<tool_call>"  # auto: a lazy grammar


def test_a_model_without_a_template_gets_the_generic_syntax() -> None:
    request = ChatRequest("m", HISTORY, tools=(WEATHER,), tool_choice="required")
    plan = plan_chat(entry(), request)
    assert plan.syntax.name == "generic"
    assert plan.prompt.startswith("<start_of_turn>user\nBe brief.\n\nYou can call these tools:")
    assert "You must call at least one of these tools now." in plan.prompt
    assert '<start_of_turn>model\n<tool_call>\n{"name": "get_weather"' in plan.prompt
    assert "<tool_response>\nsunny\n</tool_response>" in plan.prompt
    assert plan.constraint is not None
    assert plan.constraint.trigger == ""  # required: the grammar holds from the first token
    assert plan.constraint.prefix == '<tool_call>\n{"name": "get_weather", "arguments":'
    assert plan.constraint.grammar.splitlines()[-1].endswith('("\\n" block){0,7}')


def test_tool_choice_none_leaves_the_tools_out_but_keeps_the_history() -> None:
    plan = plan_chat(entry(), ChatRequest("m", HISTORY, tools=(WEATHER,), tool_choice="none"))
    assert "You can call these tools" not in plan.prompt
    assert '"name": "get_weather"' in plan.prompt  # the past call is still shown
    assert (plan.tools, plan.constraint) == ((), None)


def test_a_named_choice_is_one_call_and_must_be_offered() -> None:
    request = ChatRequest("m", HISTORY, tools=(WEATHER,), tool_choice="get_weather")
    plan = plan_chat(entry(), request)
    assert plan.constraint is not None
    assert plan.constraint.prefix == '<tool_call>\n{"name": "get_weather", "arguments":'
    assert plan.constraint.grammar.splitlines()[-1] == 'root ::= first "\\n</tool_call>"'
    with pytest.raises(BadRequestError, match="not in 'tools'"):
        plan_chat(entry(), ChatRequest("m", HISTORY, tools=(WEATHER,), tool_choice="other"))
