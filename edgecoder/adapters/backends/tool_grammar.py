"""The grammar of a tool-calling turn: only calls of the offered tools, arguments per schema.

Built from the tools' JSON schemas (:mod:`edgecoder.adapters.backends.gbnf`) in the
model's tool syntax (:class:`~edgecoder.inference.tool_calls.ToolSyntax`). Each call is
written ``{"name": "<tool>", "arguments": <object of its schema>}`` with that spacing, the
one form the grammar allows, so even a tiny model cannot wander. A turn holds one call, or
up to :data:`MAX_PARALLEL_CALLS` when parallel calls are allowed, and nothing after them:
once the grammar is complete only end-of-generation remains.

With ``tool_choice`` ``required`` or a tool's name, the whole output follows the grammar.
With ``auto`` the model writes freely until it writes the syntax's opening marker, and the
rest follows :func:`call_grammar` with ``opened`` (a lazy grammar, as llama.cpp's server
has): the model decides whether to call, the grammar decides that the call is well formed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from edgecoder.adapters.backends.gbnf import GrammarBuilder, literal
from edgecoder.inference.tool_calls import ToolSyntax
from edgecoder.inference.types import ToolSpec

__all__ = ("MAX_PARALLEL_CALLS", "ToolGrammar", "answer_grammar", "call_grammar")

MAX_PARALLEL_CALLS = 8
"""Most calls in one turn when parallel calls are allowed."""

_NAME = '{"name": "'
_ARGUMENTS = '", "arguments":'


@dataclass(frozen=True, slots=True)
class ToolGrammar:
    """A turn of calls: the text it must start with, and the grammar of the rest.

    The ``prefix`` is what every allowed turn starts with (the opening marker, the call's
    first characters, and the tool's name when only one is allowed). It is written, not
    sampled: a small model asked for these characters one by one would be refused by the
    grammar at nearly every token, and each refusal costs a check of the whole vocabulary.
    It ends before a space, where tokenizers do not end a token.
    """

    prefix: str
    grammar: str


def call_grammar(
    tools: Sequence[ToolSpec],
    choice: str,
    syntax: ToolSyntax,
    *,
    parallel: bool,
    opened: bool = False,
    answer: dict[str, object] | None = None,
) -> ToolGrammar:
    """The turn of tool calls (GBNF root rule ``root``, after the prefix).

    :param choice: ``auto``/``required`` (any tool) or one tool's name (only that one).
    :param opened: the output already ends with the syntax's opening marker.
    :param answer: a JSON schema: the turn is either calls or a JSON answer of it (and
        the prefix is then empty, since the two share no start).
    """
    chosen = [t for t in tools if t.name == choice] or list(tools)
    builder = GrammarBuilder()
    tails = []
    for i, tool in enumerate(chosen):
        arguments = builder.schema(tool.parameters, f"tool{i}-arguments")
        name = json.dumps(tool.name, ensure_ascii=False)[1:-1]
        tails.append(
            builder.rule(f"tool{i}-tail", f'{literal(name + _ARGUMENTS)} " " {arguments} "}}"')
        )
    # A call after the first is written whole; the first one's start is the prefix.
    call = builder.rule("call", f"{literal(_NAME)} ({' | '.join(tails)})")
    if len(chosen) == 1:
        name = json.dumps(chosen[0].name, ensure_ascii=False)[1:-1]
        started, first = _NAME + name + _ARGUMENTS, builder.rule("first", f'" " {arguments} "}}"')
    else:
        started, first = _NAME, builder.rule("first", " | ".join(tails))
    more = MAX_PARALLEL_CALLS - 1 if parallel else 0
    if syntax.array:
        prefix = ("" if opened else syntax.open) + "[" + started
        rest = f' (", " {call}){{0,{more}}}' if more else ""
        body = f'{first}{rest} "]"'
    else:
        prefix = ("" if opened else syntax.open) + "\n" + started
        close = literal("\n" + syntax.close)
        block = builder.rule("block", f"{literal(syntax.open + chr(10))} {call} {close}")
        rest = f" ({literal(chr(10))} {block}){{0,{more}}}" if more else ""
        body = f"{first} {close}{rest}"
    if answer is not None:
        value = builder.schema(answer, "answer")
        builder.rule("root", f"{value} | {literal(prefix)} {body}")
        return ToolGrammar("", builder.text())
    builder.rule("root", body)
    return ToolGrammar(prefix, builder.text())


def answer_grammar(schema: dict[str, object]) -> str:
    """The grammar of an answer that is JSON valid against ``schema``."""
    builder = GrammarBuilder()
    value = builder.schema(schema, "answer")
    builder.rule("root", value)
    return builder.text()
