"""OpenAI Responses bodies (``POST /v1/responses``) → inference requests.

Every request field OpenAI documents is either used, accepted without effect (said so in
``docs/api.md``), or refused with a 400 naming it; none is refused for merely being there.

* Used: ``model``, ``input`` (a string, or items: messages with ``input_text``/
  ``output_text`` parts, ``function_call``, ``function_call_output``), ``instructions``,
  ``max_output_tokens``, ``temperature``, ``top_p``, ``tools`` (function tools),
  ``tool_choice``, ``parallel_tool_calls``, ``max_tool_calls``, ``text.format``
  (``text``, ``json_object``, ``json_schema``), ``stream``, ``metadata`` (echoed).
* Accepted without effect: ``store`` (nothing is stored: the answer says ``store: false``),
  ``reasoning`` (no model here reasons apart from its answer), ``include`` values that
  ask for nothing this node produces, ``truncation`` (the node never truncates: a prompt
  too long is a 400 either way), ``user``, ``safety_identifier``, ``prompt_cache_key``,
  ``prompt_cache_retention``, ``prompt_cache_options``, ``service_tier``,
  ``stream_options``, ``text.verbosity``, ``moderation``, ``context_management``,
  ``access_programs``, ``background: false``, ``top_logprobs: 0``.
* Refused: ``previous_response_id`` and ``conversation`` (no state is kept: send the whole
  conversation in ``input``), ``background: true``, ``prompt`` (stored prompt templates),
  ``top_logprobs`` above 0 and ``include`` of logprobs, built-in tools (web search, file
  search, code interpreter, computer use, MCP, image generation…), images and files,
  ``item_reference`` items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgecoder.adapters.web.parsed import ParsedChat
from edgecoder.adapters.web.request_limits import MAX_MESSAGES, MAX_TOOLS, at_most
from edgecoder.adapters.web.requests import Fields, item_fields
from edgecoder.errors import BadRequestError
from edgecoder.inference.types import ChatMessage, ChatRequest, SamplingParams, ToolCall, ToolSpec

__all__ = ("ParsedResponse", "input_items", "parse_response")

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_TEXT_PARTS = {"input_text", "output_text", "text", "refusal"}
_MEDIA_PARTS = {"input_image", "input_file", "input_audio", "image_url"}
_REFUSED = {
    "previous_response_id": "this node keeps no response state; send the whole conversation "
    "in 'input'",
    "conversation": "this node keeps no conversations; send the whole conversation in 'input'",
    "prompt": "this node has no stored prompt templates; send the prompt in 'input'",
}
_LOGPROBS = "message.output_text.logprobs"


@dataclass(frozen=True, slots=True)
class ParsedResponse(ParsedChat):
    """A Responses body: the chat request, and what the answer echoes back."""

    echo: dict[str, object] = field(default_factory=dict)


def _parts(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequestError(f"'{where}' must be a string or an array of parts", where)
    texts = []
    for i, part in enumerate(content):
        at = f"{where}[{i}]"
        fields = item_fields(part, at)
        kind = fields.text("type", required=True)
        if kind in _TEXT_PARTS:
            texts.append(fields.text("refusal" if kind == "refusal" else "text", "") or "")
        elif kind in _MEDIA_PARTS:
            raise BadRequestError(f"'{at}' is {kind}: this node's models read text only", at)
        else:
            raise BadRequestError(f"'{at}.type' {kind!r} is not a content part", f"{at}.type")
    return "".join(texts)


def _output_text(raw: Any, where: str) -> str:
    """A ``function_call_output``'s ``output``: a string, or text parts."""
    return raw if isinstance(raw, str) else _parts(raw, where)


def input_items(raw: list[Any]) -> list[ChatMessage]:
    """Responses ``input`` items as chat messages (parallel calls share one turn)."""
    at_most(raw, MAX_MESSAGES, "input", "items")
    messages: list[ChatMessage] = []
    for i, item in enumerate(raw):
        at = f"input[{i}]"
        fields = item_fields(item, at)
        kind = fields.text("type", "message")
        if kind == "message":
            role = _ROLES.get(fields.text("role", "") or "")
            if role is None:
                raise BadRequestError(
                    f"'{at}.role' must be system, developer, user or assistant", f"{at}.role"
                )
            text = _parts(item.get("content"), f"{at}.content")
            messages.append(ChatMessage(role, text))  # type: ignore[arg-type]
        elif kind == "function_call":
            call = ToolCall(
                fields.text("call_id", required=True) or "",
                fields.text("name", required=True) or "",
                fields.text("arguments", "{}") or "{}",
            )
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                # Parallel calls (and the text before them) are one assistant turn.
                messages[-1] = ChatMessage("assistant", last.content, (*last.tool_calls, call))
            else:
                messages.append(ChatMessage("assistant", "", (call,)))
        elif kind == "function_call_output":
            output = _output_text(item.get("output"), f"{at}.output")
            call_id = fields.text("call_id", required=True) or ""
            messages.append(ChatMessage("tool", output, tool_call_id=call_id))
        elif kind == "reasoning":
            continue  # a reasoning model's summary from elsewhere: nothing to read here
        elif kind == "item_reference":
            raise BadRequestError(
                f"'{at}': this node keeps no items to refer to; send the item itself", at
            )
        else:
            raise BadRequestError(
                f"'{at}.type' {kind!r} is not an input item this node reads", f"{at}.type"
            )
    return messages


def _tools(fields: Fields) -> tuple[ToolSpec, ...]:
    raw = fields.array("tools") or []
    at_most(raw, MAX_TOOLS, "tools", "tools")
    specs = []
    for i, item in enumerate(raw):
        at = f"tools[{i}]"
        tool = item_fields(item, at)
        kind = tool.text("type", required=True)
        if kind != "function":
            raise BadRequestError(
                f"'{at}.type' {kind!r} is one of OpenAI's hosted tools; only function tools "
                "run here (the client runs them)",
                f"{at}.type",
            )
        parameters = tool.mapping("parameters")
        specs.append(
            ToolSpec(
                tool.text("name", required=True) or "",
                tool.text("description", "") or "",
                parameters.data if parameters else {"type": "object", "properties": {}},
            )
        )
    return tuple(specs)


def _tool_choice(fields: Fields, tools: tuple[ToolSpec, ...]) -> str:
    raw = fields.data.get("tool_choice")
    if raw is None:
        return "auto"
    if isinstance(raw, str) and raw in {"auto", "none", "required"}:
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("name"), str):
        name = str(raw["name"])
        if name not in {t.name for t in tools}:
            raise BadRequestError(f"'tool_choice.name' {name!r} is not in 'tools'", "tool_choice")
        return name
    raise BadRequestError(
        '\'tool_choice\' must be auto, none, required or {"type": "function", "name": …}',
        "tool_choice",
    )


def _text_format(fields: Fields) -> tuple[dict[str, object] | None, dict[str, object]]:
    """(the JSON schema the answer must match, or None for text; the echoed ``text``)."""
    text = fields.mapping("text")
    form = text.mapping("format") if text else None
    if form is None:
        return None, {"format": {"type": "text"}}
    kind = form.text("type", required=True)
    if kind == "text":
        return None, {"format": {"type": "text"}}
    if kind == "json_object":
        return {"type": "object"}, {"format": {"type": "json_object"}}
    if kind == "json_schema":
        schema = form.mapping("schema")
        if schema is None:
            raise BadRequestError("'text.format.schema' is required", "text.format.schema")
        return schema.data, {"format": form.data}
    raise BadRequestError(
        "'text.format.type' must be text, json_object or json_schema", "text.format.type"
    )


def _refusals(fields: Fields) -> None:
    for name, why in _REFUSED.items():
        if fields.has(name):
            raise BadRequestError(f"'{name}': {why}", name)
    if fields.flag("background"):
        raise BadRequestError("'background': this node answers while you wait", "background")
    logprobs = fields.integer("top_logprobs", minimum=0)
    if logprobs:
        raise BadRequestError("'top_logprobs': this node does not return logprobs", "top_logprobs")
    for value in fields.array("include") or []:
        if not isinstance(value, str):
            raise BadRequestError("'include' must be an array of strings", "include")
        if value == _LOGPROBS:
            raise BadRequestError(f"'include': {_LOGPROBS} is not available here", "include")
    for name in ("reasoning", "metadata", "stream_options", "text"):
        fields.mapping(name)  # must be objects when given


def parse_response(fields: Fields) -> ParsedResponse:
    """A ``/v1/responses`` body.

    :raises BadRequestError: a field is missing, malformed or refused; the error names it.
    """
    _refusals(fields)
    model = fields.text("model", required=True) or ""
    raw = fields.data.get("input")
    if isinstance(raw, str):
        messages = [ChatMessage("user", raw)]
    elif isinstance(raw, list):
        messages = input_items(raw)
    else:
        raise BadRequestError("'input' must be a string or an array of items", "input")
    instructions = fields.text("instructions")
    if instructions:
        messages.insert(0, ChatMessage("system", instructions))
    if not any(m.role != "system" for m in messages):
        raise BadRequestError("'input' must hold at least one message", "input")
    tools = _tools(fields)
    choice = _tool_choice(fields, tools)
    parallel = fields.flag("parallel_tool_calls", True)
    max_calls = fields.integer("max_tool_calls", minimum=0)
    if max_calls == 0:
        choice = "none"
    elif max_calls == 1:
        parallel = False
    schema, text = _text_format(fields)
    sampling = SamplingParams(
        max_tokens=fields.integer("max_output_tokens", minimum=1),
        temperature=fields.number("temperature", 0.0, 2.0),
        top_p=fields.number("top_p", 0.0, 1.0),
    )
    metadata = fields.mapping("metadata")
    request = ChatRequest(
        model=model,
        messages=tuple(messages),
        sampling=sampling,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        json_schema=schema,
    )
    echo: dict[str, object] = {
        "instructions": instructions,
        "metadata": metadata.data if metadata else {},
        "max_output_tokens": sampling.max_tokens,
        "max_tool_calls": max_calls,
        "parallel_tool_calls": parallel,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "text": text,
        "tool_choice": _echo_choice(choice, tools),
        "tools": fields.data.get("tools") or [],
        "truncation": fields.text("truncation", "disabled"),
        "user": fields.text("user"),
    }
    return ParsedResponse(request, fields.flag("stream"), echo=echo)


def _echo_choice(choice: str, tools: tuple[ToolSpec, ...]) -> object:
    if choice in {"auto", "none", "required"}:
        return choice
    return {"type": "function", "name": choice}
