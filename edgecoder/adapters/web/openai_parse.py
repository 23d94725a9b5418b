"""OpenAI request bodies → inference requests, accepting what real clients send.

Accepted beyond the strict schema, because Continue, Cursor and others send it:
``content`` as a string or an array of parts (text parts joined; ``cache_control``
markers ignored), the ``developer`` role (as ``system``), Responses-API-shaped bodies on
``/chat/completions`` (``input``, ``instructions``, ``max_output_tokens``; ``include``,
``reasoning``, ``text`` ignored), ``max_completion_tokens`` for ``max_tokens``, and
vLLM's ``ignore_eos`` extension. ``response_format`` (``json_object``, ``json_schema``)
holds the answer to the schema (see ``docs/inference.md``).
Refused with a 400 naming the field: ``n`` other than 1, images, malformed messages.
"""

from __future__ import annotations

from typing import Any

from edgecoder.adapters.web.parsed import ParsedChat, ParsedCompletion
from edgecoder.adapters.web.request_limits import (
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGES,
    MAX_TOOLS,
    at_most,
)
from edgecoder.adapters.web.requests import Fields, item_fields, parse_tool_calls
from edgecoder.adapters.web.responses_parse import input_items
from edgecoder.errors import BadRequestError
from edgecoder.inference.types import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    SamplingParams,
    ToolSpec,
)

__all__ = ("ParsedChat", "ParsedCompletion", "parse_chat", "parse_completion", "parse_embeddings")

_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequestError(f"'{where}' must be a string or an array of parts", where)
    texts = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        at = f"{where}[{i}]"
        fields = item_fields(part, at)
        kind = fields.text("type", "text")
        if kind in {"text", "input_text", "output_text"}:
            texts.append(fields.text("text", required=True) or "")
        elif kind in {"image_url", "input_image", "image", "input_audio", "file", "input_file"}:
            raise BadRequestError(f"'{at}' is {kind}: this node's models read text only", at)
        else:
            raise BadRequestError(f"'{at}' has unknown part type {kind!r}", at)
    return "".join(texts)


def _messages(raw: list[Any], where: str) -> tuple[ChatMessage, ...]:
    at_most(raw, MAX_MESSAGES, where, "messages")
    messages = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        fields = item_fields(item, at)
        if fields.text("type", "message") != "message":
            continue  # Responses input items such as reasoning summaries carry no prompt
        role = _ROLES.get(fields.text("role", "") or "")
        if role is None:
            raise BadRequestError(
                f"'{at}.role' must be system, developer, user, assistant or tool", f"{at}.role"
            )
        messages.append(
            ChatMessage(
                role=role,  # type: ignore[arg-type]
                content=_content_text(item.get("content"), f"{at}.content"),
                tool_calls=parse_tool_calls(item.get("tool_calls"), f"{at}.tool_calls"),
                tool_call_id=fields.text("tool_call_id", "") or "",
            )
        )
    return tuple(messages)


def _tools(fields: Fields) -> tuple[ToolSpec, ...]:
    raw = fields.array("tools") or []
    at_most(raw, MAX_TOOLS, "tools", "tools")
    specs = []
    for i, tool in enumerate(raw):
        at = f"tools[{i}]"
        outer = item_fields(tool, at)
        kind = outer.text("type", "function")
        if kind != "function":
            raise BadRequestError(
                f"'{at}.type' {kind!r}: only function tools run here (the client runs them)",
                f"{at}.type",
            )
        fn = outer.mapping("function") or outer
        name = fn.text("name")
        if name is None:
            raise BadRequestError(f"'{at}.function.name' is required", at)
        params = fn.mapping("parameters")
        specs.append(
            ToolSpec(
                name,
                fn.text("description", "") or "",
                params.data if params and params.data else {"type": "object", "properties": {}},
            )
        )
    return tuple(specs)


def _tool_choice(fields: Fields) -> str:
    choice = fields.data.get("tool_choice")
    if choice is None:
        return "auto"
    if isinstance(choice, str) and choice in {"auto", "none", "required"}:
        return choice
    if isinstance(choice, dict):
        function = choice.get("function")
        named = function if isinstance(function, dict) else choice
        if isinstance(named.get("name"), str):
            return str(named["name"])
        kind = choice.get("type")
        if isinstance(kind, str) and kind in {"auto", "none", "required"}:
            return kind
    raise BadRequestError("'tool_choice' must be auto, none, required or a function", "tool_choice")


def _response_format(fields: Fields) -> dict[str, object] | None:
    """The JSON schema ``response_format`` asks for (``json_object``: any object), or None."""
    form = fields.mapping("response_format")
    if form is None:
        return None
    kind = form.text("type", required=True)
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = form.mapping("json_schema")
        schema = spec.mapping("schema") if spec else None
        if schema is None:
            raise BadRequestError(
                "'response_format.json_schema.schema' is required", "response_format.json_schema"
            )
        return schema.data
    raise BadRequestError(
        "'response_format.type' must be text, json_object or json_schema", "response_format.type"
    )


def _sampling(fields: Fields) -> SamplingParams:
    n = fields.integer("n", minimum=1)
    if n not in (None, 1):
        raise BadRequestError("'n' must be 1: one completion per request", "n")
    logprobs = fields.data.get("logprobs")
    if logprobs not in (None, False, 0):
        raise BadRequestError("'logprobs': this node does not return log probabilities", "logprobs")
    if fields.integer("top_logprobs", minimum=0):
        raise BadRequestError(
            "'top_logprobs': this node does not return log probabilities", "top_logprobs"
        )
    max_tokens = fields.integer("max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = fields.integer("max_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = fields.integer("max_output_tokens", minimum=1)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=fields.number("temperature", 0.0, 2.0),
        top_p=fields.number("top_p", 0.0, 1.0),
        stop=fields.stops("stop"),
        seed=fields.integer("seed"),
        ignore_eos=fields.flag("ignore_eos"),
    )


def _stream_options(fields: Fields) -> tuple[bool, bool]:
    stream = fields.flag("stream")
    options = fields.mapping("stream_options")
    include_usage = bool(options and options.flag("include_usage"))
    return stream, include_usage


def parse_chat(fields: Fields) -> ParsedChat:
    """A chat completion body (or a Responses-shaped one).

    :raises BadRequestError: a field is missing or malformed; the error names it.
    """
    model = fields.text("model", required=True) or ""
    if fields.has("messages"):
        messages = _messages(fields.array("messages") or [], "messages")
    elif fields.has("input"):
        raw = fields.data["input"]
        if isinstance(raw, str):
            messages = (ChatMessage("user", raw),)
        elif isinstance(raw, list):
            messages = tuple(input_items(raw))
        else:
            raise BadRequestError("'input' must be a string or an array of items", "input")
        instructions = fields.text("instructions")
        if instructions:
            messages = (ChatMessage("system", instructions), *messages)
    else:
        raise BadRequestError("'messages' is required", "messages")
    if not messages:
        raise BadRequestError("'messages' must not be empty", "messages")
    stream, include_usage = _stream_options(fields)
    tools = _tools(fields)
    choice = _tool_choice(fields)
    if choice not in {"auto", "none", "required"} and choice not in {t.name for t in tools}:
        raise BadRequestError(
            f"'tool_choice' names {choice!r}, which is not in 'tools'", "tool_choice"
        )
    return ParsedChat(
        ChatRequest(
            model=model,
            messages=messages,
            sampling=_sampling(fields),
            tools=tools,
            tool_choice=choice,
            parallel_tool_calls=fields.flag("parallel_tool_calls", True),
            json_schema=_response_format(fields),
        ),
        stream,
        include_usage,
    )


def parse_completion(fields: Fields) -> ParsedCompletion:
    """A (legacy) completion or FIM body: ``prompt`` and optional ``suffix``.

    :raises BadRequestError: a field is missing or malformed.
    """
    model = fields.text("model", required=True) or ""
    prompt = fields.data.get("prompt", "")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise BadRequestError("'prompt' must be a string (or an array of one string)", "prompt")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequestError("'prompt' must be a string", "prompt")
    stream, include_usage = _stream_options(fields)
    return ParsedCompletion(
        CompletionRequest(
            model=model,
            prompt=prompt,
            suffix=fields.text("suffix") or "",
            sampling=_sampling(fields),
        ),
        stream,
        include_usage,
        fields.flag("echo"),
    )


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_id(x) for x in value)


def parse_embeddings(
    fields: Fields,
) -> tuple[EmbeddingRequest, str, list[list[int]] | None]:
    """An embeddings body: the request, the encoding format (float or base64), and the
    inputs as token ids when they came so (the request's ``inputs`` are then empty: decode
    them with :func:`~edgecoder.adapters.web.token_ids.decode_token_ids`, in a thread).

    :raises BadRequestError: a field is missing or malformed.
    """
    model = fields.text("model", required=True) or ""
    encoding = fields.text("encoding_format", "float") or "float"
    if encoding not in {"float", "base64"}:
        raise BadRequestError("'encoding_format' must be float or base64", "encoding_format")
    if fields.has("dimensions"):
        raise BadRequestError(
            "'dimensions': this node's models give vectors of one fixed size", "dimensions"
        )
    raw = fields.data.get("input")
    if isinstance(raw, str):
        inputs: tuple[str, ...] = (raw,)
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        at_most(raw, MAX_EMBEDDING_INPUTS, "input", "texts")
        inputs = tuple(raw)
    elif isinstance(raw, list) and raw and all(_is_id(x) for x in raw):
        return EmbeddingRequest(model=model, inputs=()), encoding, [raw]
    elif isinstance(raw, list) and raw and all(_ids(x) for x in raw):
        at_most(raw, MAX_EMBEDDING_INPUTS, "input", "texts")
        return EmbeddingRequest(model=model, inputs=()), encoding, raw
    else:
        raise BadRequestError(
            "'input' must be a string, an array of strings, an array of token ids, or an "
            "array of arrays of token ids",
            "input",
        )
    return EmbeddingRequest(model=model, inputs=inputs), encoding, None
