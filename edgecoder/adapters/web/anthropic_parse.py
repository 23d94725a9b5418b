"""Anthropic Messages bodies (``/v1/messages``, ``/count_tokens``) → inference requests.

Read as the Messages API documents them: ``system`` as a string or text blocks,
``messages`` of ``user``/``assistant`` turns whose content is a string or blocks (``text``,
``tool_use``, ``tool_result``), and ``system`` messages among them (Claude Code sends its
environment notes so), ``max_tokens`` (required, as Anthropic requires it),
``stop_sequences``, ``temperature`` (0 to 1), ``top_p``, ``top_k``, ``tools`` (``name``,
``description``, ``input_schema``), ``tool_choice`` (``auto``, ``any``, ``tool``, ``none``,
``disable_parallel_tool_use``), ``stream``, and ``output_config.format`` (or the older
``output_format``): a ``json_schema`` the answer is held to.

Accepted and ignored, honestly: ``metadata``, ``cache_control`` markers (this node caches
the longest common prompt prefix by itself), ``thinking`` (no model here reasons in a
separate channel, so no thinking block is ever produced; ``thinking`` and
``redacted_thinking`` blocks in the history are dropped), ``service_tier``.
Refused with a 400 naming the field: images and documents (the models here read text
only), Anthropic's server tools (``web_search_…``, ``bash_…``, ``text_editor_…``: they run
on Anthropic's servers), ``mcp_servers``. An image inside a ``tool_result`` becomes a
short note instead, since an agent's history cannot drop it and a 400 would end the
session.

Claude Code's per-request billing line is removed from the system prompt
(:mod:`edgecoder.inference.volatile_lines`) so the prompt cache survives from turn to turn.
"""

from __future__ import annotations

import json
from typing import Any

from edgecoder.adapters.web.parsed import ParsedChat
from edgecoder.adapters.web.request_limits import MAX_MESSAGES, MAX_TOOLS, at_most
from edgecoder.adapters.web.requests import Fields, item_fields
from edgecoder.errors import BadRequestError
from edgecoder.inference.types import ChatMessage, ChatRequest, SamplingParams, ToolCall, ToolSpec
from edgecoder.inference.volatile_lines import strip_volatile_lines

__all__ = ("IMAGE_NOTE", "parse_count_tokens", "parse_messages")

IMAGE_NOTE = "[an image was here; this model reads text only]"
"""What an image inside a ``tool_result`` becomes."""

_MEDIA = {"image", "document", "search_result", "container_upload"}
_IGNORED = {"thinking", "redacted_thinking"}


def _text_of(block: Fields) -> str:
    return block.text("text", required=True) or ""


def _system(fields: Fields) -> tuple[ChatMessage, ...]:
    raw = fields.data.get("system")
    if raw is None:
        return ()
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list):
        texts = []
        for i, item in enumerate(raw):
            block = item_fields(item, f"system[{i}]")
            if block.text("type", "text") != "text":
                raise BadRequestError(f"'system[{i}].type' must be text", f"system[{i}].type")
            texts.append(_text_of(block))
    else:
        raise BadRequestError("'system' must be a string or an array of text blocks", "system")
    kept = [t for t in (strip_volatile_lines(t) for t in texts) if t.strip()]
    return (ChatMessage("system", "\n\n".join(kept)),) if kept else ()


def _result_text(raw: Any, at: str) -> str:
    """A ``tool_result``'s content: a string, or text (and image) blocks."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise BadRequestError(f"'{at}' must be a string or an array of blocks", at)
    texts = []
    for i, item in enumerate(raw):
        block = item_fields(item, f"{at}[{i}]")
        kind = block.text("type", "text")
        if kind == "text":
            texts.append(_text_of(block))
        elif kind in _MEDIA:
            texts.append(IMAGE_NOTE if kind == "image" else f"[a {kind} was here; omitted]")
        else:
            raise BadRequestError(f"'{at}[{i}].type' {kind!r} is not a tool result block", at)
    return "\n\n".join(texts)


def _message(item: Any, at: str) -> list[ChatMessage]:
    """One Anthropic message as chat messages: tool results first, as ``tool`` messages."""
    fields = item_fields(item, at)
    role = fields.text("role", required=True)
    if role not in {"user", "assistant", "system"}:
        raise BadRequestError(f"'{at}.role' must be user, assistant or system", f"{at}.role")
    content = item.get("content")
    if role == "system":
        # Claude Code puts its environment notes in a system message after the first turn.
        text = content if isinstance(content, str) else _result_text(content, f"{at}.content")
        text = strip_volatile_lines(text)
        return [ChatMessage("system", text)] if text.strip() else []
    if isinstance(content, str):
        return [ChatMessage(role, content)]  # type: ignore[arg-type]
    if not isinstance(content, list):
        raise BadRequestError(f"'{at}.content' must be a string or an array of blocks", at)
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[ChatMessage] = []
    for i, raw in enumerate(content):
        where = f"{at}.content[{i}]"
        block = item_fields(raw, where)
        kind = block.text("type", required=True)
        if kind == "text":
            texts.append(_text_of(block))
        elif kind in _IGNORED:
            continue
        elif kind == "tool_use" and role == "assistant":
            call_id = block.text("id", required=True) or ""
            name = block.text("name", required=True) or ""
            arguments = block.mapping("input")
            calls.append(ToolCall(call_id, name, json.dumps(arguments.data if arguments else {})))
        elif kind == "tool_result" and role == "user":
            call_id = block.text("tool_use_id", required=True) or ""
            text = _result_text(raw.get("content"), f"{where}.content")
            if block.flag("is_error"):
                text = f"Error: {text}"
            results.append(ChatMessage("tool", text, tool_call_id=call_id))
        elif kind in _MEDIA:
            raise BadRequestError(f"'{where}' is {kind}: this node's models read text only", where)
        else:
            raise BadRequestError(
                f"'{where}.type' {kind!r} is not accepted in a {role} message", f"{where}.type"
            )
    text = "\n\n".join(texts)
    if role == "assistant":
        return [ChatMessage("assistant", text, tuple(calls))]
    return [*results, ChatMessage("user", text)] if texts or not results else results


def _tools(fields: Fields) -> tuple[ToolSpec, ...]:
    raw = fields.array("tools") or []
    at_most(raw, MAX_TOOLS, "tools", "tools")
    specs = []
    for i, item in enumerate(raw):
        at = f"tools[{i}]"
        tool = item_fields(item, at)
        kind = tool.text("type", "custom")
        if kind != "custom":
            raise BadRequestError(
                f"'{at}.type' {kind!r} is one of Anthropic's server tools, which run on "
                "Anthropic's servers; define it as a custom tool with an input_schema",
                f"{at}.type",
            )
        name = tool.text("name", required=True) or ""
        schema = tool.mapping("input_schema")
        if schema is None:
            raise BadRequestError(f"'{at}.input_schema' is required", f"{at}.input_schema")
        specs.append(ToolSpec(name, tool.text("description", "") or "", schema.data))
    return tuple(specs)


def _tool_choice(fields: Fields) -> tuple[str, bool]:
    """(choice, parallel): ``auto``, ``required`` (Anthropic's ``any``), ``none`` or a name."""
    choice = fields.mapping("tool_choice")
    if choice is None:
        return "auto", True
    kind = choice.text("type", required=True)
    parallel = not choice.flag("disable_parallel_tool_use")
    if kind in {"auto", "none"}:
        return str(kind), parallel
    if kind == "any":
        return "required", parallel
    if kind == "tool":
        return choice.text("name", required=True) or "", parallel
    raise BadRequestError("'tool_choice.type' must be auto, any, tool or none", "tool_choice.type")


def _output_format(fields: Fields) -> dict[str, object] | None:
    """Structured output: ``output_config.format`` (or the older ``output_format``)."""
    config = fields.mapping("output_config")
    form = config.mapping("format") if config else fields.mapping("output_format")
    if form is None:
        return None
    if form.text("type", required=True) != "json_schema":
        raise BadRequestError("the output format's 'type' must be json_schema", "output_config")
    schema = form.mapping("schema")
    if schema is None:
        raise BadRequestError("the output format's 'schema' is required", "output_config")
    return schema.data


def _sampling(fields: Fields, *, need_max_tokens: bool) -> SamplingParams:
    max_tokens = fields.integer("max_tokens", minimum=1)
    if max_tokens is None and need_max_tokens:
        raise BadRequestError("'max_tokens' is required", "max_tokens")
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=fields.number("temperature", 0.0, 1.0),
        top_p=fields.number("top_p", 0.0, 1.0),
        top_k=fields.integer("top_k", minimum=0),
        stop=fields.stops("stop_sequences"),
    )


def _request(fields: Fields, *, need_max_tokens: bool) -> ChatRequest:
    model = fields.text("model", required=True) or ""
    raw = fields.array("messages")
    if raw is None:
        raise BadRequestError("'messages' is required", "messages")
    at_most(raw, MAX_MESSAGES, "messages", "messages")
    messages = [*_system(fields)]
    for i, item in enumerate(raw):
        messages += _message(item, f"messages[{i}]")
    if not any(m.role != "system" for m in messages):
        raise BadRequestError("'messages' must not be empty", "messages")
    for name in ("metadata", "thinking"):
        fields.mapping(name)  # accepted and ignored, but must be objects
    if fields.array("mcp_servers"):
        raise BadRequestError(
            "'mcp_servers': this node does not connect to MCP servers; run them in the client",
            "mcp_servers",
        )
    tools = _tools(fields)
    choice, parallel = _tool_choice(fields)
    if choice not in {"auto", "none", "required"} and choice not in {t.name for t in tools}:
        raise BadRequestError(f"'tool_choice.name' {choice!r} is not in 'tools'", "tool_choice")
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        sampling=_sampling(fields, need_max_tokens=need_max_tokens),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        json_schema=_output_format(fields),
    )


def parse_messages(fields: Fields) -> ParsedChat:
    """A ``/v1/messages`` body.

    :raises BadRequestError: a field is missing or malformed; the error names it.
    """
    return ParsedChat(_request(fields, need_max_tokens=True), fields.flag("stream"))


def parse_count_tokens(fields: Fields) -> ChatRequest:
    """A ``/v1/messages/count_tokens`` body (``max_tokens`` is not needed).

    :raises BadRequestError: a field is missing or malformed; the error names it.
    """
    return _request(fields, need_max_tokens=False)
