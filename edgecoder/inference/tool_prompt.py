"""Putting tools, past calls and their results into a prompt that has no place for them.

For a model whose chat template does not render tools (the default Gemma 270M has no
template at all), the conversation is rewritten into plain messages before it is
formatted: the tools and how to call them join the system message, each past call is
written into its assistant turn in the model's tool syntax, and each tool result becomes
a user turn in a ``<tool_response>`` block (adjacent results share one turn). With
``tool_choice`` ``required`` or a tool's name, the instructions say so; the grammar that
constrains the output is what makes it so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from edgecoder.inference.tool_calls import ToolSyntax
from edgecoder.inference.types import ChatMessage, ToolCall, ToolSpec

__all__ = ("plain_messages", "tool_instructions")


def tool_instructions(tools: Sequence[ToolSpec], choice: str, syntax: ToolSyntax) -> str:
    """The system prompt's part that offers ``tools`` and says how to call them."""
    listed = "\n".join(
        json.dumps(
            {"name": t.name, "description": t.description, "parameters": t.parameters},
            ensure_ascii=False,
        )
        for t in tools
    )
    example = syntax.block([ToolCall("", "tool name", '{"argument": "value"}')])
    if choice == "required":
        rule = "You must call at least one of these tools now."
    elif choice not in {"auto", "none"}:
        rule = f"You must call the tool {choice} now."
    else:
        rule = "If no tool is needed, answer directly."
    return (
        f"You can call these tools:\n{listed}\n\n"
        "To call a tool, write its name and its arguments as a JSON object, like this:\n"
        f"{example}\n"
        "Write one such block per call. Each result comes back in a <tool_response> block. "
        f"{rule}"
    )


def plain_messages(
    messages: Sequence[ChatMessage], syntax: ToolSyntax, instructions: str = ""
) -> tuple[ChatMessage, ...]:
    """``messages`` with calls written out, results as user turns, instructions in system."""
    out: list[ChatMessage] = []
    if instructions:
        system = [m.content for m in messages if m.role == "system" and m.content]
        out.append(ChatMessage("system", "\n\n".join([*system, instructions])))
    for message in messages:
        if message.role == "system":
            if not instructions:
                out.append(message)
            continue
        if message.role == "tool":
            block = f"<tool_response>\n{message.content}\n</tool_response>"
            if out and out[-1].role == "user" and out[-1].content.endswith("</tool_response>"):
                out[-1] = ChatMessage("user", f"{out[-1].content}\n{block}")
            else:
                out.append(ChatMessage("user", block))
            continue
        if message.role == "assistant" and message.tool_calls:
            calls = syntax.block(message.tool_calls)
            text = f"{message.content}\n{calls}" if message.content else calls
            out.append(ChatMessage("assistant", text))
            continue
        out.append(ChatMessage(message.role, message.content))
    return tuple(out)
