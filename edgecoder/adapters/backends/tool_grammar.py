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

from edgecoder.adapters.backends.gbnf import GrammarBuilder, literal
from edgecoder.inference.tool_calls import ToolSyntax
from edgecoder.inference.types import ToolSpec

__all__ = ("MAX_PARALLEL_CALLS", "call_grammar")

_NEWLINE = literal("\n")

MAX_PARALLEL_CALLS = 8
"""Most calls in one turn when parallel calls are allowed."""


def call_grammar(
    tools: Sequence[ToolSpec],
    choice: str,
    syntax: ToolSyntax,
    *,
    parallel: bool,
    opened: bool = False,
) -> str:
    """The GBNF grammar (root rule ``root``) of a turn of tool calls.

    :param choice: ``auto``/``required`` (any tool) or one tool's name (only that one).
    :param opened: the output already ends with the syntax's opening marker.
    """
    chosen = [t for t in tools if t.name == choice] or list(tools)
    names = []
    builder = GrammarBuilder()
    for i, tool in enumerate(chosen):
        arguments = builder.schema(tool.parameters, f"tool{i}-arguments")
        head = literal('{"name": ' + json.dumps(tool.name, ensure_ascii=False) + ', "arguments": ')
        names.append(builder.rule(f"tool{i}-call", f'{head} {arguments} "}}"'))
    call = builder.rule("call", " | ".join(names))
    more = MAX_PARALLEL_CALLS - 1 if parallel else 0
    if syntax.array:
        calls = f'{call} (", " {call}){{0,{more}}}' if more else call
        opening = "" if opened else literal(syntax.open)
        builder.rule("root", f'{opening} "[" {calls} "]"'.strip())
    else:
        close = literal("\n" + syntax.close)
        block = builder.rule("block", f"{literal(syntax.open + chr(10))} {call} {close}")
        first = f"{_NEWLINE} {call} {close}" if opened else block
        rest = f" ({_NEWLINE} {block}){{0,{more}}}" if more else ""
        builder.rule("root", f"{first}{rest}")
    return builder.text()
