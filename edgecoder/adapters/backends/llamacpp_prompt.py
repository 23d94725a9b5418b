"""A chat request as the embedded model reads it: prompt, stops, tool syntax and grammar.

The chat format is the model's own template, Gemma's turn format, or a plain transcript
(:mod:`edgecoder.inference.prompting`). The tool syntax is the template's own when it
renders tools in one the node can read (``<tool_call>`` blocks, Mistral's
``[TOOL_CALLS]``), and then the template shows the model its tools, calls and results;
otherwise it is the generic syntax, and the conversation is rewritten into plain
messages first (:mod:`edgecoder.inference.tool_prompt`). With tools on, decoding is
constrained (:mod:`edgecoder.adapters.backends.tool_grammar`): from the first token when
a call is required or named, from the syntax's opening marker when the choice is ``auto``.
A JSON answer (``json_schema``: OpenAI's ``response_format``, the Responses API's
``text.format``, Ollama's ``format``) is held to its schema from the first token; with
tools on ``auto`` the turn is either calls or that JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgecoder.adapters.backends.chat_templates import render_template
from edgecoder.adapters.backends.llamacpp_runtime import Constraint
from edgecoder.adapters.backends.tool_grammar import answer_grammar, call_grammar
from edgecoder.errors import BadRequestError
from edgecoder.inference.prompting import (
    GEMMA_STOPS,
    TRANSCRIPT_STOPS,
    format_gemma,
    format_transcript,
)
from edgecoder.inference.tool_calls import GENERIC, ToolSyntax, syntax_for_template
from edgecoder.inference.tool_prompt import plain_messages, tool_instructions
from edgecoder.inference.types import ChatMessage, ChatRequest
from edgecoder.storage.models import ModelEntry

__all__ = ("ChatPlan", "plan_chat")


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """What the model is given, and how its output is read."""

    prompt: str
    stops: tuple[str, ...]
    syntax: ToolSyntax
    tools: tuple[str, ...]
    """Names of the tools the model may call (empty: tools are off)."""
    constraint: Constraint | None


def _format(entry: ModelEntry, messages: Sequence[ChatMessage]) -> tuple[str, tuple[str, ...]]:
    if entry.chat_template:
        return render_template(entry.chat_template, messages)
    if entry.architecture.startswith("gemma"):
        return format_gemma(messages), GEMMA_STOPS
    return format_transcript(messages), TRANSCRIPT_STOPS


def plan_chat(entry: ModelEntry, request: ChatRequest) -> ChatPlan:
    """The prompt and reading of ``request`` on the model ``entry``.

    :raises BadRequestError: ``tool_choice`` names a tool not offered, or the template
        refuses the messages.
    """
    tools_on = bool(request.tools) and request.tool_choice != "none"
    choice = request.tool_choice
    names = tuple(t.name for t in request.tools) if tools_on else ()
    if tools_on and choice not in {"auto", "required"} and choice not in names:
        raise BadRequestError(f"'tool_choice' names {choice!r}, which is not in 'tools'")
    syntax = syntax_for_template(entry.chat_template) if entry.chat_template else GENERIC
    if syntax.native:
        offered = request.tools if tools_on else ()
        prompt, stops = render_template(entry.chat_template, request.messages, offered)
    else:
        instructions = tool_instructions(request.tools, choice, syntax) if tools_on else ""
        prompt, stops = _format(entry, plain_messages(request.messages, syntax, instructions))
    return ChatPlan(prompt, stops, syntax, names, _constraint(request, syntax, tools_on))


def _constraint(request: ChatRequest, syntax: ToolSyntax, tools_on: bool) -> Constraint | None:
    """The grammar of the answer: calls, a JSON answer, either, or none (free text)."""
    choice, schema = request.tool_choice, request.json_schema
    if not tools_on:
        return None if schema is None else Constraint(answer_grammar(schema))
    # A named choice forces that one call, as OpenAI's does; else the client decides.
    parallel = request.parallel_tool_calls and choice in {"auto", "required"}
    if choice == "auto" and schema is not None:
        turn = call_grammar(request.tools, choice, syntax, parallel=parallel, answer=schema)
        return Constraint(turn.grammar)
    lazy = choice == "auto"
    turn = call_grammar(request.tools, choice, syntax, parallel=parallel, opened=lazy)
    return Constraint(turn.grammar, syntax.open if lazy else "", turn.prefix)
